//! What the demo prints: narration lines, and the live `get rollout` tree.
//!
//! Interactive (a terminal, without `--non-interactive`): the screen is redrawn with the recent
//! narration above the current tree whenever the tree changes. Plain: narration lines as they
//! come, and the tree again only when something worth reading changed (phase, step, weights,
//! analysis runs), never redrawn.

use std::io::Write;

use crate::text::{Color, Style};

/// Narration lines kept above the tree when redrawing.
const NARRATION_LINES: usize = 10;

/// The demo's output.
pub struct View {
    interactive: bool,
    style: Style,
    narration: Vec<String>,
    /// The last tree shown (interactive) and the milestone it was printed for (plain).
    last_tree: Option<String>,
    last_milestone: Option<String>,
}

impl View {
    /// A view redrawing the screen (`interactive`) or printing plain lines.
    pub fn new(interactive: bool, style: Style) -> Self {
        Self {
            interactive,
            style,
            narration: Vec::new(),
            last_tree: None,
            last_milestone: None,
        }
    }

    /// The colour style of trees.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Prints a narration line.
    pub fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        let painted = format!(
            "{} {line}",
            self.style.paint("==>", Some(Color::BrightBlue))
        );
        self.narration.push(painted.clone());
        if self.interactive && self.last_tree.is_some() {
            self.redraw();
        } else {
            println!("{painted}");
        }
    }

    /// Shows the tree: redrawn when it changed (interactive), printed when `milestone` changed
    /// (plain).
    pub fn tree(&mut self, tree: String, milestone: String) {
        if self.interactive {
            if self.last_tree.as_ref() != Some(&tree) {
                self.last_tree = Some(tree);
                self.redraw();
            }
        } else if self.last_milestone.as_ref() != Some(&milestone) {
            self.last_milestone = Some(milestone);
            println!("\n{tree}");
        }
    }

    /// Ends live drawing: what follows is printed below the last frame.
    pub fn finish_live(&mut self) {
        self.last_tree = None;
        self.last_milestone = None;
        println!();
    }

    fn redraw(&self) {
        let mut out = std::io::stdout().lock();
        let start = self.narration.len().saturating_sub(NARRATION_LINES);
        let mut frame = String::from("\x1b[H\x1b[2J");
        for line in &self.narration[start..] {
            frame.push_str(line);
            frame.push('\n');
        }
        if let Some(tree) = &self.last_tree {
            frame.push('\n');
            frame.push_str(tree);
        }
        // A closed terminal is not worth failing the demo for.
        let _ = out.write_all(frame.as_bytes()).and_then(|()| out.flush());
    }
}
