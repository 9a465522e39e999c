//! dbward's MCP server: the gateway's tools, offered to AI clients over stdio and
//! streamable HTTP. The only crate that depends on `rmcp`.
//!
//! It is a thin adapter. Each tool (one file each under `tools/`) declares its argument
//! schema and description for a model, calls one gateway method, and hands the answer to
//! `render`, which builds both the structured result and a compact text form. Policy, SQL
//! and limits live in the gateway; nothing here decides what a query may do.
//!
//! Invariants:
//! - Every gateway failure reaches the client as a *tool* error (`isError: true`) carrying
//!   the stable code and, for refusals, the rule id. Only a request that cannot be routed
//!   (an unknown tool) is a protocol error; the server keeps serving either way.
//! - Everything read from a database (rows, names, comments, plans) is marked untrusted:
//!   a preamble in the text form and `_meta["dbward/untrusted"] = true`.
//! - Nothing here writes to stdout except the stdio transport itself: stdout is the MCP
//!   channel.
//! - Over HTTP, no request reaches the MCP service without a valid bearer token (one of
//!   the token file's, or an OAuth access token the issuer signed), unless the operator
//!   bound to loopback and explicitly allowed unauthenticated access.

#![deny(clippy::print_stdout, clippy::print_stderr)]
// The module docs describe the design and link to private items: they resolve in
// `cargo doc --document-private-items`, the documentation a contributor reads.
#![allow(rustdoc::private_intra_doc_links)]

mod auth_throttle;
pub mod client;
pub mod drain;
mod error;
pub mod http;
pub mod listener;
mod malformed;
pub mod oauth;
pub mod provider;
mod render;
mod server;
mod stdio;
mod tools;

pub use client::HostSession;
pub use dbward_gateway::HostEventKind;
pub use drain::Drain;
pub use error::McpError;
pub use http::{HttpOptions, Principal, TokenSet, check_exposure, serve_http};
pub use server::{
    DbwardServer, HOST_EVENT_METHOD, HOST_IDENTITY_META_KEY, HOST_SESSION_META_KEY, HostEvent,
    HostIdentity, ServerOptions,
};
pub use stdio::serve_stdio;
