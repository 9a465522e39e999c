//! dbward's assistant: turns a question into tool calls with an OpenAI-compatible model.
//!
//! [`llm`] is the OpenAI-compatible client; [`agent`] the tool-call loop, an MCP host of a
//! `dbward serve` child. The model is never trusted: it only *proposes* tool calls, which
//! the loop validates and sends through the gateway like any other call.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod agent;
pub mod llm;
