//! The design documents in `docs/`, checked against the code so they cannot rot:
//!
//! - the event storming board names every event of the published language (its table and its
//!   diagrams), and no event that does not exist;
//! - every test the checklist → proof map names still exists, as a test;
//! - every file, `file.rs::Item` and type name the documents put in `code` style exists, and
//!   every relative link (and its `#anchor`) resolves;
//! - the README points into the repository for the product and the design.
//!
//! Each check is a function from text to a list of problems, so the last tests here also show
//! each check failing on a broken document.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// How many items the origin checklist has (it is a finished historical document).
const CHECKLIST_ITEMS: usize = 35;

const THIS_FILE: &str = "tests/suite/docs.rs";

// ---------------------------------------------------------------------------------------------
// the repository as text
// ---------------------------------------------------------------------------------------------

struct Repo {
    root: PathBuf,
    /// What every Rust source file defines, by path relative to the root (with `/`).
    sources: BTreeMap<String, Defined>,
    /// Every identifier of every Rust source but this file (whose examples name things that
    /// do not exist on purpose).
    words: BTreeSet<String>,
}

#[derive(Default)]
struct Defined {
    items: BTreeSet<String>,
    tests: BTreeSet<String>,
}

impl Repo {
    /// The repository, read once for all the tests of this file.
    fn get() -> &'static Self {
        static REPO: OnceLock<Repo> = OnceLock::new();
        REPO.get_or_init(Self::load)
    }

    fn load() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root")
            .to_path_buf();
        let mut texts = BTreeMap::new();
        collect_sources(&root, &root, &mut texts);
        let test_macros = test_macros(texts.values().map(String::as_str));
        let words = texts
            .iter()
            .filter(|(path, _)| path.as_str() != THIS_FILE)
            .flat_map(|(_, text)| identifiers(text).map(|(_, ident)| ident.to_owned()))
            .collect();
        let sources = texts
            .iter()
            .map(|(path, text)| {
                let defined = Defined {
                    items: items_in(text),
                    tests: tests_in(text, &test_macros),
                };
                (path.clone(), defined)
            })
            .collect();
        Self {
            root,
            sources,
            words,
        }
    }

    /// What the Rust file at `path` defines; `None` if there is no such file.
    fn defined(&self, path: &str) -> Option<&Defined> {
        self.sources.get(path)
    }

    fn exists(&self, relative: &str) -> bool {
        self.root.join(relative).exists()
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.root.join(relative))
            .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
    }

    fn docs(&self) -> Vec<(String, String)> {
        let mut docs: Vec<(String, String)> = fs::read_dir(self.root.join("docs"))
            .expect("docs/")
            .map(|entry| {
                entry
                    .expect("docs/ entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".md"))
            .map(|name| {
                let path = format!("docs/{name}");
                let text = self.read(&path);
                (path, text)
            })
            .collect();
        docs.sort();
        docs
    }

    /// Whether `word` occurs as a whole identifier in some Rust source.
    fn mentions(&self, word: &str) -> bool {
        self.words.contains(word)
    }
}

fn collect_sources(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            // Build outputs, dependencies and local data are not the project's sources.
            if !name.starts_with('.') && !["target", "node_modules", "var"].contains(&name.as_str())
            {
                collect_sources(root, &path, out);
            }
        } else if name.ends_with(".rs") {
            let relative = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(relative, fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every identifier of `text` with its byte offset.
fn identifiers(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = None;
    let mut out = Vec::new();
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (start, is_ident_char(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    out.into_iter()
        .filter(|(_, ident)| !ident.starts_with(|c: char| c.is_ascii_digit()))
}

/// The text between the bracket at `open` and its matching closing bracket.
fn bracketed(text: &str, open: usize) -> Option<&str> {
    let opening = text[open..].chars().next()?;
    let closing = match opening {
        '(' => ')',
        '{' => '}',
        '[' => ']',
        _ => return None,
    };
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        if c == opening {
            depth += 1;
        } else if c == closing {
            depth -= 1;
            if depth == 0 {
                return Some(&text[open + 1..open + i]);
            }
        }
    }
    None
}

/// Macros whose expansion is a `#[test]`: `on_every_backend!(a, b)` makes tests of `a`, `b`.
fn test_macros<'a>(sources: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let mut macros = BTreeSet::new();
    for text in sources {
        for (at, _) in text.match_indices("macro_rules!") {
            let rest = &text[at + "macro_rules!".len()..];
            let Some((_, name)) = identifiers(rest).next() else {
                continue;
            };
            let Some(open) = rest.find('{') else {
                continue;
            };
            let body = bracketed(rest, open).unwrap_or_default();
            if body.contains("#[test]") || body.contains("#[tokio::test") {
                macros.insert(name.to_owned());
            }
        }
    }
    macros
}

/// Names defined in `text` by `fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`, `mod`
/// or `macro_rules!`.
fn items_in(text: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 9] = [
        "fn",
        "struct",
        "enum",
        "trait",
        "type",
        "const",
        "static",
        "mod",
        "macro_rules",
    ];
    let idents: Vec<&str> = identifiers(text).map(|(_, ident)| ident).collect();
    let mut items = BTreeSet::new();
    for pair in idents.windows(2) {
        if KEYWORDS.contains(&pair[0]) && !KEYWORDS.contains(&pair[1]) {
            items.insert(pair[1].to_owned());
        }
    }
    items
}

/// The tests defined in `text`: functions under a test attribute, and the functions a test
/// macro lists.
fn tests_in(text: &str, test_macros: &BTreeSet<String>) -> BTreeSet<String> {
    let mut tests = BTreeSet::new();
    let mut under_test_attribute = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
            under_test_attribute = true;
        } else if under_test_attribute && (line.starts_with("#[") || line.starts_with("//")) {
            // more attributes or comments before the function
        } else if under_test_attribute {
            let idents: Vec<&str> = identifiers(line).map(|(_, ident)| ident).collect();
            if let Some(at) = idents.iter().position(|ident| *ident == "fn")
                && let Some(name) = idents.get(at + 1)
            {
                tests.insert((*name).to_owned());
            }
            under_test_attribute = false;
        }
    }
    let functions = items_in(text);
    for name in test_macros {
        for (at, _) in text.match_indices(&format!("{name}!")) {
            let before = text[..at].trim_end();
            if before.ends_with("macro_rules!") || before.ends_with(|c: char| is_ident_char(c)) {
                continue;
            }
            let after = &text[at + name.len() + 1..];
            let Some(open) = after.find(|c: char| !c.is_whitespace()) else {
                continue;
            };
            let listed = bracketed(after, open).unwrap_or_default();
            for (_, ident) in identifiers(listed) {
                if functions.contains(ident) {
                    tests.insert(ident.to_owned());
                }
            }
        }
    }
    tests
}

// ---------------------------------------------------------------------------------------------
// Markdown as the checks need it
// ---------------------------------------------------------------------------------------------

/// `text` without its fenced code blocks, and the blocks of language `lang`.
fn split_fences<'a>(text: &'a str, lang: &str) -> (String, Vec<&'a str>) {
    let mut prose = String::new();
    let mut blocks = Vec::new();
    let mut block: Option<(bool, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let fence = line.trim_start().starts_with("```");
        match block {
            None if fence => {
                let wanted = line.trim_start().trim_start_matches('`').trim() == lang;
                block = Some((wanted, offset + line.len()));
            }
            None => prose.push_str(line),
            Some((wanted, start)) if fence => {
                if wanted {
                    blocks.push(&text[start..offset]);
                }
                block = None;
            }
            Some(_) => {}
        }
        offset += line.len();
    }
    (prose, blocks)
}

/// The inline code spans of `prose` (single backticks).
fn code_spans(prose: &str) -> Vec<&str> {
    prose
        .lines()
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .filter(|span| !span.is_empty())
        .collect()
}

/// The targets of the Markdown links of `prose`, outside code spans.
fn link_targets(prose: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose.lines() {
        let outside_code: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        for (at, _) in outside_code.match_indices("](") {
            if let Some(target) = bracketed(&outside_code, at + 1) {
                targets.push(target.to_owned());
            }
        }
    }
    targets
}

/// GitHub's anchor of a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let (prose, _) = split_fences(text, "");
    prose
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| slug(line.trim_start_matches('#')))
        .collect()
}

/// The cells of a table row (`| a | b |`), trimmed; `None` for other lines.
fn cells(line: &str) -> Option<Vec<&str>> {
    let line = line.trim();
    let inner = line.strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

/// The lines of the section under the heading `## {title}`, up to the next `## `.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| line.trim() != format!("## {title}"))
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// the checks
// ---------------------------------------------------------------------------------------------

/// The event storming board against the published language: the domain events table lists
/// each event once, the diagrams show each at least once, and neither names another.
fn event_board_problems(board: &str, events: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = BTreeMap::<String, usize>::new();
    for row in section(board, "Domain events")
        .into_iter()
        .filter_map(cells)
    {
        let first = row[0];
        if let Some(name) = first.strip_prefix('`').and_then(|f| f.strip_suffix('`')) {
            *listed.entry(name.to_owned()).or_default() += 1;
        }
    }
    for (name, count) in &listed {
        if !events.contains(name) {
            problems.push(format!(
                "the domain events table names `{name}`, which is no event of shared-events"
            ));
        }
        if *count > 1 {
            problems.push(format!(
                "the domain events table lists `{name}` {count} times"
            ));
        }
    }
    let (_, diagrams) = split_fences(board, "mermaid");
    let mut drawn = BTreeSet::new();
    for diagram in diagrams {
        for (at, _) in diagram.match_indices(":::event") {
            let after = diagram[at + ":::event".len()..].chars().next();
            if after.is_some_and(is_ident_char) {
                continue;
            }
            let before = &diagram[..at];
            let label = before
                .strip_suffix("\"]")
                .and_then(|b| b.rfind("[\"").map(|open| &b[open + 2..]));
            match label {
                Some(label) if events.contains(label) => {
                    drawn.insert(label.to_owned());
                }
                Some(label) => problems.push(format!(
                    "a diagram's event sticker says \"{label}\", which is no event of shared-events"
                )),
                None => problems.push(format!(
                    "an event sticker without a [\"label\"] near {:?}",
                    &before[before.len().saturating_sub(40)..]
                )),
            }
        }
    }
    for event in events {
        if !listed.contains_key(event) {
            problems.push(format!("`{event}` is missing from the domain events table"));
        }
        if !drawn.contains(event) {
            problems.push(format!("`{event}` is on none of the board's diagrams"));
        }
    }
    problems
}

/// The checklist → proof map: every item numbered, each with a proof or an open issue, and every
/// `file.rs::name` a test in that file.
fn proof_map_problems(map: &str, repo: &Repo) -> Vec<String> {
    let mut problems = Vec::new();
    let (prose, _) = split_fences(map, "");
    let mut numbers = Vec::new();
    for row in prose.lines().filter_map(cells) {
        let Ok(number) = row[0].parse::<usize>() else {
            continue;
        };
        numbers.push(number);
        let proof = row.last().copied().unwrap_or_default();
        let has_evidence = proof.contains('`') || proof.contains("](");
        let open: Vec<&str> = proof.split(OPEN).skip(1).collect();
        if open.iter().any(|after| !names_an_issue(after)) {
            problems.push(format!(
                "item {number} is open but names no issue (write \"{OPEN}issue N\")"
            ));
        }
        if !has_evidence && open.is_empty() {
            problems.push(format!("item {number} has no proof and is not marked open"));
        }
    }
    if numbers != (1..=CHECKLIST_ITEMS).collect::<Vec<_>>() {
        problems.push(format!(
            "the items are numbered {numbers:?}, not 1 to {CHECKLIST_ITEMS}"
        ));
    }
    for span in code_spans(&prose) {
        let Some((path, name)) = span.split_once(".rs::") else {
            continue;
        };
        // `file.rs::Type` names code (checked with every document's references); a
        // snake_case name is a test.
        if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        let path = format!("{path}.rs");
        match repo.defined(&path) {
            None => problems.push(format!("`{span}`: {path} does not exist")),
            Some(defined) if !defined.tests.contains(name) => {
                problems.push(format!("`{span}`: {path} has no test `{name}`"));
            }
            Some(_) => {}
        }
    }
    problems
}

/// How the proof map marks an item that cannot be demonstrated yet: "open — issue N".
const OPEN: &str = "open — ";

fn names_an_issue(text: &str) -> bool {
    text.strip_prefix("issue ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// A code span that names a path in the repository (`services/seat/src/lib.rs`, `scripts/test`).
fn repo_path<'a>(span: &'a str, repo: &Repo) -> Option<&'a str> {
    let first = span.split('/').next()?;
    let looks_like_a_path = span.contains('/')
        && !first.is_empty()
        && !span.contains(|c: char| c.is_whitespace() || "<>*{}".contains(c));
    (looks_like_a_path && repo.root.join(first).is_dir()).then_some(span)
}

/// A code span that is a Rust type path (`Reservation`, `BookingService::confirm`).
fn type_path(span: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = span.split("::").collect();
    let all_identifiers = segments
        .iter()
        .all(|s| !s.is_empty() && s.chars().all(is_ident_char));
    let first = segments[0];
    let camel_case = first.starts_with(|c: char| c.is_ascii_uppercase())
        && first.contains(|c: char| c.is_ascii_lowercase());
    (all_identifiers && camel_case).then_some(segments)
}

/// Everything a document puts in `code` style that names code, and every relative link.
fn reference_problems(doc_path: &str, text: &str, repo: &Repo) -> Vec<String> {
    let mut problems = Vec::new();
    let (prose, _) = split_fences(text, "");
    for span in code_spans(&prose) {
        if let Some((path, item)) = span.split_once(".rs::") {
            let path = format!("{path}.rs");
            let Some(defined) = repo.defined(&path) else {
                problems.push(format!("{doc_path}: `{span}`: {path} does not exist"));
                continue;
            };
            for segment in item.split("::") {
                if !defined.items.contains(segment) && !defined.tests.contains(segment) {
                    problems.push(format!(
                        "{doc_path}: `{span}`: {path} defines no `{segment}`"
                    ));
                }
            }
        } else if let Some(path) = repo_path(span, repo) {
            if !repo.exists(path) {
                problems.push(format!("{doc_path}: `{span}` does not exist"));
            }
        } else if let Some(segments) = type_path(span) {
            for segment in segments {
                if !repo.mentions(segment) {
                    problems.push(format!(
                        "{doc_path}: `{span}`: no Rust source mentions `{segment}`"
                    ));
                }
            }
        }
    }
    problems.extend(link_problems(doc_path, &prose, repo));
    problems
}

/// Every relative link of `prose` (a document at `doc_path`) leads to a file, and its
/// `#anchor` to a heading of that file.
fn link_problems(doc_path: &str, prose: &str, repo: &Repo) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = Path::new(doc_path).parent().unwrap_or(Path::new(""));
    for target in link_targets(prose) {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (target.as_str(), None),
        };
        let linked = if file.is_empty() {
            PathBuf::from(doc_path)
        } else {
            dir.join(file)
        };
        let linked = normalize(&linked);
        if !repo.exists(&linked) {
            problems.push(format!("{doc_path}: the link ({target}) leads nowhere"));
            continue;
        }
        if let Some(anchor) = anchor
            && linked.ends_with(".md")
            && !anchors(&repo.read(&linked)).contains(anchor)
        {
            problems.push(format!(
                "{doc_path}: the link ({target}): {linked} has no heading #{anchor}"
            ));
        }
    }
    problems
}

/// `docs/../README.md` → `README.md`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::CurDir => {}
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

fn published_events() -> BTreeSet<String> {
    shared_events::schemas()
        .into_iter()
        .map(|(name, _, _, _)| name.to_owned())
        .collect()
}

fn assert_none(mut problems: Vec<String>) {
    let mut seen = BTreeSet::new();
    problems.retain(|problem| seen.insert(problem.clone()));
    assert!(
        problems.is_empty(),
        "the documents and the code disagree:\n- {}",
        problems.join("\n- ")
    );
}

// ---------------------------------------------------------------------------------------------
// the documents as they are
// ---------------------------------------------------------------------------------------------

#[test]
fn the_event_storming_board_names_every_published_event_and_no_other() {
    let repo = Repo::get();
    let board = repo.read("docs/event-storming.md");
    assert_none(event_board_problems(&board, &published_events()));
}

#[test]
fn every_test_the_proof_map_names_exists() {
    let repo = Repo::get();
    let map = repo.read("docs/checklist.md");
    assert_none(proof_map_problems(&map, repo));
}

#[test]
fn code_named_in_the_docs_exists() {
    let repo = Repo::get();
    let mut problems = Vec::new();
    for (path, text) in repo.docs() {
        problems.extend(reference_problems(&path, &text, repo));
    }
    let (readme, _) = split_fences(&repo.read("README.md"), "");
    problems.extend(link_problems("README.md", &readme, repo));
    assert_none(problems);
}

#[test]
fn the_readme_and_the_index_lead_to_every_document() {
    let repo = Repo::get();
    let readme = repo.read("README.md");
    let mut problems = Vec::new();
    if readme.contains("../shared") {
        problems.push(
            "README.md points outside the repository (../shared); link docs/ instead".to_owned(),
        );
    }
    let readme_links = link_targets(&split_fences(&readme, "").0);
    for wanted in ["docs/product.md", "docs/README.md"] {
        if !readme_links
            .iter()
            .any(|t| t.split('#').next() == Some(wanted))
        {
            problems.push(format!("README.md does not link {wanted}"));
        }
    }
    let index = repo.read("docs/README.md");
    let index_links = link_targets(&split_fences(&index, "").0);
    for (path, _) in repo.docs() {
        let name = path.trim_start_matches("docs/");
        if name != "README.md" && !index_links.iter().any(|t| t == name) {
            problems.push(format!("docs/README.md does not link {name}"));
        }
    }
    assert_none(problems);
}

// ---------------------------------------------------------------------------------------------
// the checks fail when they should
// ---------------------------------------------------------------------------------------------

#[test]
fn a_board_that_loses_an_event_or_names_a_stranger_fails() {
    let repo = Repo::get();
    let board = repo.read("docs/event-storming.md");
    let events = published_events();

    let row_removed: String = board
        .lines()
        .filter(|line| !line.starts_with("| `PaymentRefunded` |"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(row_removed != board, "the board has a PaymentRefunded row");
    let problems = event_board_problems(&row_removed, &events);
    assert_eq!(
        problems,
        ["`PaymentRefunded` is missing from the domain events table"]
    );

    let sticker_renamed = board.replace("[\"PaymentRefunded\"]:::event", "[\"Refunded\"]:::event");
    assert!(sticker_renamed != board, "the board draws PaymentRefunded");
    let problems = event_board_problems(&sticker_renamed, &events);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"Refunded\", which is no event")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "`PaymentRefunded` is on none of the board's diagrams"),
        "{problems:?}"
    );

    let stranger = board.replace(
        "| `SeatReserved` |",
        "| `SeatReleased` | seat | made up | made up | nobody |\n| `SeatReserved` |",
    );
    let problems = event_board_problems(&stranger, &events);
    assert_eq!(
        problems,
        ["the domain events table names `SeatReleased`, which is no event of shared-events"]
    );
}

#[test]
fn tests_are_found_by_attribute_and_by_test_macro_and_helpers_are_not_tests() {
    let macros = test_macros(
        [
            "macro_rules! on_both { ($($n:ident),+) => { $( #[tokio::test] async fn $n() {} )+ } }",
            "macro_rules! not_tests { () => { fn helper() {} } }",
        ]
        .into_iter(),
    );
    assert_eq!(macros, BTreeSet::from(["on_both".to_owned()]));
    let source = r#"
        #[test]
        fn plain() {}

        #[tokio::test(flavor = "multi_thread")]
        #[ignore = "production stack only"]
        /// With a doc comment between.
        async fn attributed() {}

        fn helper() {}
        async fn listed(db: Db) {}
        async fn also_listed<S: Store>(f: Fixture<S>) {}
        not_tests!();
        on_both!(listed, also_listed,);
    "#;
    assert_eq!(
        tests_in(source, &macros),
        BTreeSet::from(["also_listed", "attributed", "listed", "plain"].map(str::to_owned))
    );
}

#[test]
fn a_proof_naming_a_vanished_test_or_a_helper_fails() {
    let repo = Repo::get();
    let rows: String = (1..=CHECKLIST_ITEMS)
        .map(|n| {
            format!(
                "| {n} | item | `tests/suite/docs.rs::every_test_the_proof_map_names_exists` |\n"
            )
        })
        .collect();
    assert_none(proof_map_problems(&rows, repo));

    let broken = rows
        .replacen(
            "docs.rs::every_test_the_proof_map_names_exists",
            "docs.rs::a_test_that_was_renamed",
            1,
        )
        .replacen(
            "docs.rs::every_test_the_proof_map_names_exists",
            "docs.rs::published_events",
            1,
        )
        .replacen(
            "`tests/suite/docs.rs::every_test_the_proof_map_names_exists`",
            "open — soon",
            1,
        )
        .replacen(
            "`tests/suite/docs.rs::every_test_the_proof_map_names_exists`",
            "",
            1,
        )
        .replace("| 35 |", "| 36 |");
    let problems = proof_map_problems(&broken, repo);
    assert_eq!(
        problems,
        [
            "item 3 is open but names no issue (write \"open — issue N\")".to_owned(),
            "item 4 has no proof and is not marked open".to_owned(),
            format!(
                "the items are numbered {:?}, not 1 to 35",
                (1..=34).chain([36]).collect::<Vec<_>>()
            ),
            "`tests/suite/docs.rs::a_test_that_was_renamed`: tests/suite/docs.rs has no test `a_test_that_was_renamed`"
                .to_owned(),
            "`tests/suite/docs.rs::published_events`: tests/suite/docs.rs has no test `published_events`"
                .to_owned(),
        ]
    );
}

#[test]
fn a_document_naming_code_or_pages_that_do_not_exist_fails() {
    let repo = Repo::get();
    let good = "`services/seat/src/domain/reservation.rs::Reservation::confirm`, \
                `shared-events/schemas/`, `BookingService::confirm`, `KRW`, `/api/board`, \
                [the map](context-map.md#relationships), [readme](../README.md)";
    assert_none(reference_problems("docs/x.md", good, repo));

    let bad = "`services/seat/src/domain/reservation.rs::Reservation::teleport`, \
               `services/seat/src/domain/gone.rs::Reservation`, `services/seat/migrations/mongo/`, \
               `BookingServiceV2`, [the map](context-map.md#no-such-heading), [gone](gone.md)";
    assert_eq!(
        reference_problems("docs/x.md", bad, repo),
        [
            "docs/x.md: `services/seat/src/domain/reservation.rs::Reservation::teleport`: services/seat/src/domain/reservation.rs defines no `teleport`",
            "docs/x.md: `services/seat/src/domain/gone.rs::Reservation`: services/seat/src/domain/gone.rs does not exist",
            "docs/x.md: `services/seat/migrations/mongo/` does not exist",
            "docs/x.md: `BookingServiceV2`: no Rust source mentions `BookingServiceV2`",
            "docs/x.md: the link (context-map.md#no-such-heading): docs/context-map.md has no heading #no-such-heading",
            "docs/x.md: the link (gone.md) leads nowhere",
        ]
    );
}
