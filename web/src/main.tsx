import { render } from "preact";
import { App } from "./app";
import { closeLive } from "./live";
import "./styles.css";

const root = document.getElementById("app");
if (root) render(<App />, root);

// Leaving the page closes the stream first, so the browser does not report it as cut off.
window.addEventListener("pagehide", closeLive);
