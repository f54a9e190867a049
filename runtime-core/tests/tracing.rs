//! The runtime's tracing output: a TRACE span per task poll with the task's id and name, and
//! DEBUG events for spawn and completion.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use runtime_core::{BasicFifo as Fifo, Config, Handle, Runtime, SpawnOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The fields of a span or event, as `(name, value)`.
type FieldList = Vec<(String, String)>;

#[derive(Default)]
struct Seen {
    spans: Mutex<Vec<(String, FieldList)>>,
    events: Mutex<Vec<FieldList>>,
    ids: AtomicU64,
}

#[derive(Clone, Default)]
struct Capture(Arc<Seen>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push((
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        ));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut f = Fields(Vec::new());
        attrs.record(&mut f);
        self.0
            .spans
            .lock()
            .unwrap()
            .push((attrs.metadata().name().to_string(), f.0));
        Id::from_u64(self.0.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(Vec::new());
        event.record(&mut f);
        self.0.events.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn poll_spans_and_lifecycle_events_name_the_task() {
    let capture = Capture::default();
    let seen = capture.0.clone();
    // Current-thread mode: tasks are polled on this thread, where the subscriber is installed.
    let rt = Runtime::new(
        Fifo::default(),
        Config {
            worker_threads: 0,
            ..Config::default()
        },
    )
    .unwrap();
    let id = tracing::subscriber::with_default(capture, || {
        rt.block_on(async {
            let h = Handle::try_current().unwrap().spawn_with(
                async {
                    runtime_core::yield_now().await;
                },
                SpawnOptions {
                    name: Some("traced".into()),
                    priority: None,
                },
            );
            let id = h.id();
            h.await.unwrap();
            id
        })
    });
    let id = id.as_u64().to_string();
    let spans = seen.spans.lock().unwrap();
    let polls: Vec<_> = spans
        .iter()
        .filter(|(name, f)| name == "poll" && field(f, "task.id") == Some(&id))
        .collect();
    assert_eq!(
        polls.len(),
        2,
        "one span per poll (the task yields once): {spans:?}"
    );
    assert!(
        polls
            .iter()
            .all(|(_, f)| field(f, "task.name") == Some("traced"))
    );
    let events = seen.events.lock().unwrap();
    let about = |msg: &str| {
        events
            .iter()
            .any(|e| field(e, "message") == Some(msg) && field(e, "task.id") == Some(&id))
    };
    assert!(about("spawn"), "{events:?}");
    assert!(about("task completed"), "{events:?}");
}
