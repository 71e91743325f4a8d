//! Operating it: the CLI, the demo, and the module map the imports must follow.

mod architecture;
pub(crate) mod cli;
mod demo;
