//! dbward's assistant: turns a question into tool calls with an OpenAI-compatible model.
//!
//! This crate holds, so far, the LLM client ([`llm`]). The model is never trusted: it only
//! *proposes* tool calls, which the tool-call loop (to come) validates and sends through
//! the gateway like any other call.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod llm;
