use crate::error::Error;
use crate::executor::{Execute, Executor};
use crate::io::{PortalId, StatementId};
use crate::logger::QueryLogger;
use crate::message::{
    self, BackendMessageFormat, Bind, Close, CommandComplete, DataRow, ParameterDescription, Parse,
    ParseComplete, RowDescription,
};
use crate::statement::PgStatementMetadata;
use crate::{
    statement::PgStatement, PgArguments, PgConnection, PgQueryResult, PgRow, PgTypeInfo,
    PgValueFormat, Postgres,
};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_core::Stream;
use futures_util::TryStreamExt;
use sqlx_core::arguments::Arguments;
use sqlx_core::sql_str::SqlStr;
use sqlx_core::Either;
use std::{pin::pin, sync::Arc};

async fn prepare(
    conn: &mut PgConnection,
    sql: &str,
    arg_types: &[PgTypeInfo],
    metadata: Option<Arc<PgStatementMetadata>>,
    persistent: bool,
    resolve_column_origin: bool,
) -> Result<(StatementId, Arc<PgStatementMetadata>), Error> {
    let id = if persistent {
        let id = conn.inner.next_statement_id;
        conn.inner.next_statement_id = id.next();
        id
    } else {
        StatementId::UNNAMED
    };

    // build a list of type OIDs to send to the database in the PARSE command
    // we have not yet started the query sequence, so we are *safe* to cleanly make
    // additional queries here to get any missing OIDs
    let param_types = conn.resolve_types(arg_types).await?;

    // flush and wait until we are re-ready
    conn.wait_until_ready().await?;

    // next we send the PARSE command to the server
    conn.inner.stream.write_msg(Parse {
        param_types: &param_types,
        query: sql,
        statement: id,
    })?;

    if metadata.is_none() {
        // get the statement columns and parameters
        conn.inner
            .stream
            .write_msg(message::Describe::Statement(id))?;
    }

    // we ask for the server to immediately send us the result of the PARSE command
    conn.write_sync();
    conn.inner.stream.flush().await?;

    // indicates that the SQL query string is now successfully parsed and has semantic validity
    conn.inner.stream.recv_expect::<ParseComplete>().await?;

    let metadata = if let Some(metadata) = metadata {
        // each SYNC produces one READY FOR QUERY
        conn.recv_ready_for_query().await?;

        // we already have metadata
        metadata
    } else {
        let parameters = recv_desc_params(conn).await?;

        let row_desc = recv_desc_rows(conn).await?;

        // each SYNC produces one READY FOR QUERY
        conn.recv_ready_for_query().await?;

        let metadata = conn
            .resolve_statement_metadata::<true>(Some(parameters), row_desc, resolve_column_origin)
            .await?;

        // ensure that if we did fetch custom data, we wait until we are fully ready before
        // continuing
        conn.wait_until_ready().await?;

        metadata
    };

    Ok((id, metadata))
}

async fn recv_desc_params(conn: &mut PgConnection) -> Result<ParameterDescription, Error> {
    conn.inner.stream.recv_expect().await
}

async fn recv_desc_rows(conn: &mut PgConnection) -> Result<Option<RowDescription>, Error> {
    let rows: Option<RowDescription> = match conn.inner.stream.recv().await? {
        // describes the rows that will be returned when the statement is eventually executed
        message if message.format == BackendMessageFormat::RowDescription => {
            Some(message.decode()?)
        }

        // no data would be returned if this statement was executed
        message if message.format == BackendMessageFormat::NoData => None,

        message => {
            return Err(err_protocol!(
                "expecting RowDescription or NoData but received {:?}",
                message.format
            ));
        }
    };

    Ok(rows)
}

impl PgConnection {
    // wait for CloseComplete to indicate a statement was closed
    pub(super) async fn wait_for_close_complete(&mut self, mut count: usize) -> Result<(), Error> {
        // we need to wait for the [CloseComplete] to be returned from the server
        while count > 0 {
            match self.inner.stream.recv().await? {
                message if message.format == BackendMessageFormat::PortalSuspended => {
                    // there was an open portal
                    // this can happen if the last time a statement was used it was not fully executed
                }

                message if message.format == BackendMessageFormat::CloseComplete => {
                    // successfully closed the statement (and freed up the server resources)
                    count -= 1;
                }

                message => {
                    return Err(err_protocol!(
                        "expecting PortalSuspended or CloseComplete but received {:?}",
                        message.format
                    ));
                }
            }
        }

        Ok(())
    }

    #[inline(always)]
    pub(crate) fn write_sync(&mut self) {
        self.inner
            .stream
            .write_msg(message::Sync)
            .expect("BUG: Sync should not be too big for protocol");

        // all SYNC messages will return a ReadyForQuery
        self.inner.pending_ready_for_query_count += 1;
    }

    async fn get_or_prepare(
        &mut self,
        sql: &str,
        parameters: &[PgTypeInfo],
        persistent: bool,
        // optional metadata that was provided by the user, this means they are reusing
        // a statement object
        metadata: Option<Arc<PgStatementMetadata>>,
        resolve_column_origin: bool,
    ) -> Result<(StatementId, Arc<PgStatementMetadata>), Error> {
        if let Some(statement) = self.inner.cache_statement.get_mut(sql) {
            return Ok((*statement).clone());
        }

        let statement = prepare(
            self,
            sql,
            parameters,
            metadata,
            persistent,
            resolve_column_origin,
        )
        .await?;

        if persistent && self.inner.cache_statement.is_enabled() {
            if let Some((id, _)) = self.inner.cache_statement.insert(sql, statement.clone()) {
                self.inner.stream.write_msg(Close::Statement(id))?;
                self.write_sync();

                self.inner.stream.flush().await?;

                self.wait_for_close_complete(1).await?;
                self.recv_ready_for_query().await?;
            }
        }

        Ok(statement)
    }

    pub(crate) async fn run<'e, 'c: 'e, 'q: 'e>(
        &'c mut self,
        query: SqlStr,
        arguments: Option<PgArguments>,
        persistent: bool,
        metadata_opt: Option<Arc<PgStatementMetadata>>,
        // dbward patch: see `PgConnection::fetch_pipelined`.
        then_simple: Option<Pipelined>,
    ) -> Result<impl Stream<Item = Result<Either<PgQueryResult, PgRow>, Error>> + 'e, Error> {
        let mut logger = QueryLogger::new(query, self.inner.log_settings.clone());
        let sql = logger.sql().as_str();

        // before we continue, wait until we are "ready" to accept more queries
        self.wait_until_ready().await?;

        let mut metadata: Arc<PgStatementMetadata>;

        let format = if let Some(mut arguments) = arguments {
            // Check this before we write anything to the stream.
            //
            // Note: Postgres actually interprets this value as unsigned,
            // making the max number of parameters 65535, not 32767
            // https://github.com/launchbadge/sqlx/issues/3464
            // https://www.postgresql.org/docs/current/limits.html
            let num_params = u16::try_from(arguments.len()).map_err(|_| {
                err_protocol!(
                    "PgConnection::run(): too many arguments for query: {}",
                    arguments.len()
                )
            })?;

            // dbward patch: pipelined, the statement is parsed unnamed in the same flush as
            // its Bind and Execute (no Describe, so no round trip of its own), with the
            // arguments' own types. Arguments that need the described parameter types
            // (patches, type holes) are refused.
            let (statement, metadata_) = if then_simple.is_some() {
                if arguments.needs_describe() {
                    return Err(err_protocol!(
                        "a pipelined query's arguments must not need the statement described"
                    ));
                }
                let param_types = self.resolve_types(&arguments.types).await?;
                self.wait_until_ready().await?;
                // dbward patch: the caller's own statements first, in the same flush.
                if let Some(p) = &then_simple {
                    for before in &p.before {
                        self.write_own_statement(before)?;
                    }
                }
                self.inner.stream.write_msg(Parse {
                    param_types: &param_types,
                    query: sql,
                    statement: StatementId::UNNAMED,
                })?;
                (
                    StatementId::UNNAMED,
                    Arc::new(PgStatementMetadata::default()),
                )
            } else {
                // prepare the statement if this our first time executing it
                // always return the statement ID here
                self.get_or_prepare(sql, &arguments.types, persistent, metadata_opt, false)
                    .await?
            };

            metadata = metadata_;

            // patch holes created during encoding
            if then_simple.is_none() {
                arguments.apply_patches(self, &metadata.parameters).await?;
            }

            // consume messages till `ReadyForQuery` before bind and execute
            // (dbward patch: pipelined, nothing is pending, and the Parse stays unflushed)
            if then_simple.is_none() {
                self.wait_until_ready().await?;
            }

            // bind to attach the arguments to the statement and create a portal
            self.inner.stream.write_msg(Bind {
                portal: PortalId::UNNAMED,
                statement,
                formats: &[PgValueFormat::Binary],
                num_params,
                params: &arguments.buffer,
                result_formats: &[PgValueFormat::Binary],
            })?;

            // executes the portal up to the passed limit
            // the protocol-level limit acts nearly identically to the `LIMIT` in SQL
            self.inner.stream.write_msg(message::Execute {
                portal: PortalId::UNNAMED,
                // Non-zero limits cause query plan pessimization by disabling parallel workers:
                // https://github.com/launchbadge/sqlx/issues/3673
                limit: 0,
            })?;
            // From https://www.postgresql.org/docs/current/protocol-flow.html:
            //
            // "An unnamed portal is destroyed at the end of the transaction, or as
            // soon as the next Bind statement specifying the unnamed portal as
            // destination is issued. (Note that a simple Query message also
            // destroys the unnamed portal."

            // we ask the database server to close the unnamed portal and free the associated resources
            // earlier - after the execution of the current query.
            self.inner
                .stream
                .write_msg(Close::Portal(PortalId::UNNAMED))?;

            // finally, [Sync] asks postgres to process the messages that we sent and respond with
            // a [ReadyForQuery] message when it's completely done. Theoretically, we could send
            // dozens of queries before a [Sync] and postgres can handle that. Execution on the server
            // is still serial but it would reduce round-trips. Some kind of builder pattern that is
            // termed batching might suit this.
            // dbward patch: the caller's statements after it, then the one Sync, all in the
            // same flush; their rows are text.
            if let Some(p) = &then_simple {
                for after in &p.after {
                    self.write_own_statement(after)?;
                }
            }
            self.write_sync();

            if then_simple.is_some() {
                PgValueFormat::Text
            } else {
                // prepared statements are binary
                PgValueFormat::Binary
            }
        } else {
            // Query will trigger a ReadyForQuery
            self.queue_simple_query(sql)?;

            // metadata starts out as "nothing"
            metadata = Arc::new(PgStatementMetadata::default());

            // and unprepared statements are text
            PgValueFormat::Text
        };

        self.inner.stream.flush().await?;

        // dbward patch: see `PgConnection::last_described_columns`.
        self.inner.last_described = None;

        Ok(try_stream! {
            // dbward patch: pipelined, whether the statement running now sent a
            // RowDescription (its columns go with its CommandComplete).
            let mut described = false;
            loop {
                let message = self.inner.stream.recv().await?;

                match message.format {
                    BackendMessageFormat::BindComplete
                    | BackendMessageFormat::ParseComplete
                    | BackendMessageFormat::ParameterDescription
                    | BackendMessageFormat::NoData
                    // unnamed portal has been closed
                    | BackendMessageFormat::CloseComplete
                    => {
                        // harmless messages to ignore
                    }

                    // "Execute phase is always terminated by the appearance of
                    // exactly one of these messages: CommandComplete,
                    // EmptyQueryResponse (if the portal was created from an
                    // empty query string), ErrorResponse, or PortalSuspended"
                    BackendMessageFormat::CommandComplete => {
                        // a SQL command completed normally
                        let cc: CommandComplete = message.decode()?;

                        let rows_affected = cc.rows_affected();
                        logger.increase_rows_affected(rows_affected);
                        let described = std::mem::take(&mut described);
                        r#yield!(Either::Left(PgQueryResult {
                            rows_affected,
                            described: (described && then_simple.is_some())
                                .then(|| Arc::clone(&metadata)),
                        }));
                    }

                    BackendMessageFormat::EmptyQueryResponse => {
                        // empty query string passed to an unprepared execute
                    }

                    // Message::ErrorResponse is handled in self.stream.recv()

                    // incomplete query execution has finished
                    BackendMessageFormat::PortalSuspended => {}

                    // indicates that a *new* set of rows are about to be returned
                    BackendMessageFormat::RowDescription => {
                        let new_metadata = self.resolve_statement_metadata::<false>(
                            None,
                            Some(message.decode()?),
                            false,
                        ).await?;

                        metadata = new_metadata;
                        described = true;
                        // dbward patch: see `PgConnection::last_described_columns`.
                        if then_simple.is_some() {
                            self.inner.last_described = Some(Arc::clone(&metadata));
                        }
                    }

                    BackendMessageFormat::DataRow => {
                        logger.increment_rows_returned();

                        // one of the set of rows returned by a SELECT, FETCH, etc query
                        let data: DataRow = message.decode()?;
                        let row = PgRow {
                            data,
                            format,
                            metadata: Arc::clone(&metadata),
                        };

                        r#yield!(Either::Right(row));
                    }

                    BackendMessageFormat::ReadyForQuery => {
                        // processing of the query string is complete
                        self.handle_ready_for_query(message)?;
                        // dbward patch: pipelined, the simple query's own ReadyForQuery
                        // ends the stream.
                        if then_simple.is_none() || self.inner.pending_ready_for_query_count == 0 {
                            break;
                        }
                    }

                    _ => {
                        return Err(err_protocol!(
                            "execute: unexpected message: {:?}",
                            message.format
                        ));
                    }
                }
            }

            Ok(())
        })
    }
}

/// dbward patch: the statements sent around a pipelined statement
/// (`PgConnection::fetch_pipelined`).
pub(crate) struct Pipelined {
    before: Vec<PipelinedStatement>,
    after: Vec<PipelinedStatement>,
}

/// dbward patch: one statement of the caller's own around a pipelined statement
/// (`PgConnection::fetch_pipelined`), its rows in text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelinedStatement {
    /// A statement's text, without parameters: Parse (unnamed), Bind, Describe, Execute.
    Text(String),
    /// A statement the session has prepared by name (SQL `PREPARE`), with its parameters'
    /// text: Bind, Describe, Execute. Nothing is parsed or planned again.
    Prepared {
        /// The prepared statement's name.
        name: String,
        /// Each parameter's text, bound as a protocol value.
        params: Vec<String>,
    },
}

impl From<String> for PipelinedStatement {
    fn from(sql: String) -> Self {
        PipelinedStatement::Text(sql)
    }
}

impl PgConnection {
    /// dbward patch: one statement of the caller's own (no parameters) over the extended
    /// protocol, its result in text form: Parse (unnamed), Bind (text results), Describe
    /// (portal), Execute. No Sync: it goes in the caller's batch.
    fn write_own_statement(&mut self, statement: &PipelinedStatement) -> Result<(), Error> {
        match statement {
            PipelinedStatement::Text(sql) => self.write_text_statement(sql),
            PipelinedStatement::Prepared { name, params } => {
                self.inner.stream.write_msg(message::BindPrepared {
                    statement: name,
                    params,
                })?;
                self.inner
                    .stream
                    .write_msg(message::Describe::Portal(PortalId::UNNAMED))?;
                self.inner.stream.write_msg(message::Execute {
                    portal: PortalId::UNNAMED,
                    limit: 0,
                })?;
                Ok(())
            }
        }
    }

    fn write_text_statement(&mut self, sql: &str) -> Result<(), Error> {
        self.inner.stream.write_msg(Parse {
            param_types: &[],
            query: sql,
            statement: StatementId::UNNAMED,
        })?;
        self.inner.stream.write_msg(Bind {
            portal: PortalId::UNNAMED,
            statement: StatementId::UNNAMED,
            // (One parameter format code, like upstream's own Binds: `Bind::encode_body`
            // writes the count of result formats from the parameter formats'.)
            formats: &[PgValueFormat::Text],
            num_params: 0,
            params: &[],
            result_formats: &[PgValueFormat::Text],
        })?;
        self.inner
            .stream
            .write_msg(message::Describe::Portal(PortalId::UNNAMED))?;
        self.inner.stream.write_msg(message::Execute {
            portal: PortalId::UNNAMED,
            limit: 0,
        })?;
        Ok(())
    }

    /// dbward patch: runs `before` (statements of the caller's own, no parameters), `query`
    /// (one statement, its arguments bound with their own types) and `after` (the caller's
    /// own again) as one batch of the extended protocol with one Sync at its end, in one
    /// flush, without the round trip of a separate Parse/Describe: each statement is Parse
    /// (unnamed), Bind, Describe and Execute (`query`: Parse, Bind, Execute, Close). The
    /// server answers with one ReadyForQuery, so it flushes once (unless its output fills
    /// its buffer). Every statement's rows are in text form, but `query`'s (binary: dbward's
    /// is a DECLARE, with none). The stream yields every result in order and ends at the
    /// ReadyForQuery. If a statement fails, the server skips the rest of the batch; the
    /// stream yields the error and ends, and `skip_pending` reads what the server still
    /// sends.
    pub fn fetch_pipelined<'e, 'q: 'e, E>(
        &'e mut self,
        before: Vec<PipelinedStatement>,
        mut query: E,
        after: Vec<PipelinedStatement>,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        E: Execute<'q, Postgres> + 'q,
    {
        let arguments = query.take_arguments().map_err(Error::Encode);
        let sql = query.sql();
        let pipelined = Pipelined { before, after };
        Box::pin(try_stream! {
            let arguments = arguments?.unwrap_or_default();
            let mut s = pin!(self.run(sql, Some(arguments), false, None, Some(pipelined)).await?);
            while let Some(v) = s.try_next().await? {
                r#yield!(v);
            }
            Ok(())
        })
    }

    /// dbward patch: the columns of the last RowDescription a pipelined stream
    /// (`fetch_pipelined`) received, also after the stream ended at an error: the shape of
    /// a result whose first row could not be read (a message over `max_message_len`),
    /// described by the server just before it. `None` before any, and from the start of
    /// every later statement or stream on this connection.
    pub fn last_described_columns(&self) -> Option<&[crate::PgColumn]> {
        self.inner.last_described.as_deref().map(|m| m.columns.as_slice())
    }

    /// dbward patch: reads and drops every message the server still owes (up to the last
    /// ReadyForQuery it owes), errors included: after a pipelined stream ended at an
    /// error, the rest of the pipeline's replies. The connection is then ready, in the
    /// transaction state the server reported last.
    pub async fn skip_pending(&mut self) -> Result<(), Error> {
        if !self.inner.stream.write_buffer_mut().is_empty() {
            self.inner.stream.flush().await?;
        }
        while self.inner.pending_ready_for_query_count > 0 {
            let message = self.inner.stream.recv_unchecked().await?;
            if let BackendMessageFormat::ReadyForQuery = message.format {
                self.handle_ready_for_query(message)?;
            }
        }
        Ok(())
    }

    /// dbward patch: the types the server infers for the parameters of `sql` (`arg_types`:
    /// what the caller declares, OID 0 for "infer"), from a Parse of the *unnamed* statement
    /// and its Describe, in one round trip. Nothing runs, and no named statement holding
    /// `sql` is left in the session (upstream's `prepare_with` always names its statement;
    /// the unnamed one is replaced by the next Parse). The second value says whether the
    /// driver prepared a named statement of its own meanwhile (its catalog lookup of a type
    /// it did not know, e.g. an enum), which then stays in the session until closed.
    pub async fn describe_parameters(
        &mut self,
        sql: &str,
        arg_types: &[PgTypeInfo],
    ) -> Result<(Vec<PgTypeInfo>, bool), Error> {
        let before = self.inner.next_statement_id;
        let (_, metadata) = prepare(self, sql, arg_types, None, false, false).await?;
        Ok((
            metadata.parameters.clone(),
            self.inner.next_statement_id != before,
        ))
    }
}

impl<'c> Executor<'c> for &'c mut PgConnection {
    type Database = Postgres;

    fn fetch_many<'e, 'q, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        'c: 'e,
        E: Execute<'q, Self::Database>,
        'q: 'e,
        E: 'q,
    {
        // False positive: https://github.com/rust-lang/rust-clippy/issues/12560
        #[allow(clippy::map_clone)]
        let metadata = query.statement().map(|s| Arc::clone(&s.metadata));
        let arguments = query.take_arguments().map_err(Error::Encode);
        let persistent = query.persistent();
        let sql = query.sql();

        Box::pin(try_stream! {
            let arguments = arguments?;
            // dbward patch: `run` takes `then_simple` (None: upstream behaviour).
            let mut s = pin!(self.run(sql, arguments, persistent, metadata, None).await?);

            while let Some(v) = s.try_next().await? {
                r#yield!(v);
            }

            Ok(())
        })
    }

    fn fetch_optional<'e, 'q, E>(self, mut query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        'c: 'e,
        E: Execute<'q, Self::Database>,
        'q: 'e,
        E: 'q,
    {
        // False positive: https://github.com/rust-lang/rust-clippy/issues/12560
        #[allow(clippy::map_clone)]
        let metadata = query.statement().map(|s| Arc::clone(&s.metadata));
        let arguments = query.take_arguments().map_err(Error::Encode);
        let persistent = query.persistent();

        Box::pin(async move {
            let sql = query.sql();
            let arguments = arguments?;
            // dbward patch: `run` takes `then_simple` (None: upstream behaviour).
            let mut s = pin!(self.run(sql, arguments, persistent, metadata, None).await?);

            // With deferred constraints we need to check all responses as we
            // could get a OK response (with uncommitted data), only to get an
            // error response after (when the deferred constraint is actually
            // checked).
            let mut ret = None;
            while let Some(result) = s.try_next().await? {
                match result {
                    Either::Right(r) if ret.is_none() => ret = Some(r),
                    _ => {}
                }
            }
            Ok(ret)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            self.wait_until_ready().await?;

            let (_, metadata) = self
                .get_or_prepare(sql.as_str(), parameters, true, None, true)
                .await?;

            Ok(PgStatement { sql, metadata })
        })
    }

    #[cfg(feature = "offline")]
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<crate::describe::Describe<Self::Database>, Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            self.wait_until_ready().await?;

            let (stmt_id, metadata) = self
                .get_or_prepare(sql.as_str(), &[], true, None, true)
                .await?;

            let nullable = self.get_nullable_for_columns(stmt_id, &metadata).await?;

            Ok(crate::describe::Describe {
                columns: metadata.columns.clone(),
                nullable,
                parameters: Some(Either::Left(metadata.parameters.clone())),
            })
        })
    }
}
