//! Group inserts: the rows of every batch that arrives while an insert
//! runs go into the next insert together.
//!
//! ClickHouse wants few large inserts. Each `INSERT` writes a new part per
//! partition and per materialized view, and background merges rewrite
//! parts until they are large, so small inserts cost far more per row: on
//! Debian's 18.16 with the recorder's schema, 500,000 probe results sent
//! over HTTP cost the server about 6.6 CPU seconds in inserts of 5,000
//! rows, 4.1 in inserts of 10,000 and 2.1 in inserts of 50,000 (merges
//! included; measured on a two-core machine).
//!
//! The consumer's batches stay small enough to be pulled quickly and
//! acked soon, and several are in flight. A batch hands its rows to the
//! group task and waits; the task takes every batch waiting when it is
//! free and sends them in one `INSERT`. A quiet stream therefore gets one
//! insert per batch, as before, and a busy one gets larger inserts, up to
//! about [`MAX_GROUP_ROWS`] rows, without a timer that would add latency.
//!
//! Each batch gets its rows back with the result of the insert they were
//! part of, so a batch whose group was refused can isolate its own bad
//! rows (see [`crate::sink`]). A group is one `INSERT` of fewer rows than
//! ClickHouse's `max_insert_block_size` (1,048,576), so it is stored whole
//! or not at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{RowOwned, RowWrite};
use tokio::sync::{mpsc, oneshot};

use crate::service::{ClickHouse, StoreError};

/// Rows after which a group takes no more batches: large enough for
/// ClickHouse's per-insert costs to vanish, far below the block size that
/// keeps an insert atomic, and bounded so one insert stays well inside
/// the request timeout.
pub const MAX_GROUP_ROWS: usize = 100_000;

/// Shortest time between the starts of two inserts while the stream is
/// busy: a busy stream gets an insert of everything that arrived in this
/// time instead of an insert per batch, which is what keeps ClickHouse's
/// parts and merges few.
pub const MIN_INSERT_INTERVAL: Duration = Duration::from_millis(500);

/// An insert of at least this many rows means the stream is busy, and the
/// next insert keeps [`MIN_INSERT_INTERVAL`]. Below it (a few thousand
/// results a second or fewer) every batch is inserted as soon as it comes,
/// so history stays queryable within a batch wait.
pub const BUSY_ROWS: usize = 10_000;

/// A batch's rows back from the group task, with the result of the
/// `INSERT` they were part of.
#[derive(Debug)]
pub struct Landed<R> {
    /// The rows as they were handed over.
    pub rows: Vec<R>,
    /// The result of the whole group's insert: an error may come from
    /// another batch's rows.
    pub result: Result<(), Arc<StoreError>>,
}

struct Job<R> {
    rows: Vec<R>,
    done: oneshot::Sender<Landed<R>>,
}

/// The handle batches insert through. Cheap to clone; the task ends when
/// the last handle is dropped.
#[derive(Debug)]
pub struct GroupInsert<R> {
    jobs: mpsc::UnboundedSender<Job<R>>,
}

impl<R> Clone for GroupInsert<R> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<R> GroupInsert<R>
where
    R: RowOwned + RowWrite + Send + Sync + 'static,
{
    /// Spawns the task that inserts into `table` of `store`. Must be called
    /// within a tokio runtime.
    pub fn start(store: Arc<ClickHouse>, table: &'static str) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(store, table, queue));
        Self { jobs }
    }

    /// Inserts `rows` with whatever other batches are waiting, and returns
    /// them with the result. `None` if the task is gone (it never is while
    /// a handle exists, short of a panic): the rows were not stored.
    pub async fn insert(&self, rows: Vec<R>) -> Option<Landed<R>> {
        let (done, landed) = oneshot::channel();
        self.jobs.send(Job { rows, done }).ok()?;
        landed.await.ok()
    }
}

/// Takes the first waiting batch, then every other one waiting (up to
/// [`MAX_GROUP_ROWS`]), inserts them together and answers each. After an
/// insert of [`BUSY_ROWS`] or more, the next one starts no sooner than
/// [`MIN_INSERT_INTERVAL`] after it, so batches that arrive in between
/// join it.
async fn run<R>(
    store: Arc<ClickHouse>,
    table: &'static str,
    mut queue: mpsc::UnboundedReceiver<Job<R>>,
) where
    R: RowOwned + RowWrite + Send + Sync + 'static,
{
    // When the last busy insert started.
    let mut busy_since: Option<Instant> = None;
    while let Some(first) = queue.recv().await {
        if let Some(last) = busy_since {
            tokio::time::sleep_until((last + MIN_INSERT_INTERVAL).into()).await;
        }
        let started = Instant::now();
        let mut rows = first.rows.len();
        let mut group = vec![first];
        while rows < MAX_GROUP_ROWS {
            match queue.try_recv() {
                Ok(job) => {
                    rows += job.rows.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let (parts, waiting): (Vec<Vec<R>>, Vec<oneshot::Sender<Landed<R>>>) =
            group.into_iter().map(|job| (job.rows, job.done)).unzip();
        busy_since = (rows >= BUSY_ROWS).then_some(started);
        let result = store.insert_parts(table, &parts).await.map_err(Arc::new);
        for (rows, done) in parts.into_iter().zip(waiting) {
            // A batch whose handler is gone (its runtime is shutting
            // down) cannot hear the answer; its messages were not acked
            // and come back.
            let _ = done.send(Landed {
                rows,
                result: result.clone(),
            });
        }
    }
}
