//! Writes the JSON Schema of every event to `shared-events/schemas/` (one file per event and
//! version). Run after changing an event; a test fails while the files are stale.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(path)?;
        }
    }
    for (name, version, _topic, schema) in shared_events::schemas() {
        let path = dir.join(shared_events::schema_file_name(name, version));
        std::fs::write(&path, shared_events::render_schema(&schema))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
