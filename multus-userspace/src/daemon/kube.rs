//! The daemon's Kubernetes side: one client for the process (its connections are kept between
//! calls), and two watch caches kept by kube's reflector: the pods of this node (field selector
//! `spec.nodeName=$MULTUS_NODE_NAME`, trimmed to the metadata multus reads) and every
//! NetworkAttachmentDefinition. A call reads the pod from the cache when the cache holds it with
//! the call's `K8S_POD_UID`, else GETs it (a static pod, a pod newer than the cache); a NAD the
//! cache does not hold is GET too. The watches relist after `410 Gone` and reconnect with backoff
//! after an API outage; until then calls fall back to GETs, and config-only networks need no API.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{ApiResource, DynamicObject},
    runtime::{
        reflector::{self, ObjectRef, Store},
        watcher, WatchStreamExt,
    },
    Api, Client,
};

use super::{api::CacheState, metrics::Metrics};
use crate::kube::client::{nad_resource, ObjectCache};

/// The state of one watch cache, for `/status` and metrics.
#[derive(Debug, Default)]
pub struct WatchState {
    synced: AtomicBool,
    events: AtomicU64,
    errors: AtomicU64,
    last_event: Mutex<Option<Instant>>,
}

impl WatchState {
    fn event(&self, init_done: bool) {
        if init_done {
            self.synced.store(true, Ordering::SeqCst);
        }
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.last_event.lock() {
            *t = Some(Instant::now());
        }
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The daemon's watch caches.
pub struct Caches {
    pods: Option<(Store<Pod>, Arc<WatchState>)>,
    nads: (Store<DynamicObject>, Arc<WatchState>),
    nad_resource: ApiResource,
    metrics: Arc<Metrics>,
}

impl Caches {
    /// Starts the watches on the current runtime. Without `node` no pod cache is kept (a
    /// cluster-wide pod cache is what made the reference's daemon grow to gigabytes).
    pub fn start(client: &Client, node: Option<&str>, metrics: Arc<Metrics>) -> Arc<Caches> {
        let pods = node.map(|node| {
            let (reader, writer) = reflector::store::<Pod>();
            let state = Arc::new(WatchState::default());
            let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
            let stream = watcher(Api::<Pod>::all(client.clone()), config)
                .default_backoff()
                .modify(trim_pod)
                .reflect(writer);
            tokio::spawn(drive(stream, state.clone(), "pods"));
            (reader, state)
        });
        let ar = nad_resource();
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let reader = writer.as_reader();
        let state = Arc::new(WatchState::default());
        let stream = watcher(
            Api::<DynamicObject>::all_with(client.clone(), &ar),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|nad: &mut DynamicObject| nad.metadata.managed_fields = None)
        .reflect(writer);
        tokio::spawn(drive(
            stream,
            state.clone(),
            "network-attachment-definitions",
        ));
        Arc::new(Caches {
            pods,
            nads: (reader, state),
            nad_resource: ar,
            metrics,
        })
    }

    /// The caches' states.
    pub fn status(&self) -> Vec<CacheState> {
        let one = |resource: &'static str, objects: usize, state: &WatchState| CacheState {
            resource: resource.into(),
            synced: state.synced.load(Ordering::SeqCst),
            objects,
            last_event_age_seconds: state
                .last_event
                .lock()
                .ok()
                .and_then(|t| t.map(|t| t.elapsed().as_secs_f64())),
            errors: state.errors.load(Ordering::Relaxed),
        };
        let mut out = Vec::new();
        if let Some((store, state)) = &self.pods {
            out.push(one("pods", store.len(), state));
        }
        out.push(one(
            "network-attachment-definitions",
            self.nads.0.len(),
            &self.nads.1,
        ));
        out
    }
}

/// Keeps what multus reads of a pod: its metadata without managed fields.
fn trim_pod(pod: &mut Pod) {
    pod.spec = None;
    pod.status = None;
    pod.metadata.managed_fields = None;
    pod.metadata.owner_references = None;
}

async fn drive<S, K>(stream: S, state: Arc<WatchState>, what: &'static str)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => state.event(matches!(event, watcher::Event::InitDone)),
            Err(e) => {
                state.error();
                tracing::warn!("watch of {what}: {e}; retrying with backoff");
            }
        }
    }
}

impl ObjectCache for Caches {
    fn pod(&self, namespace: &str, name: &str, uid: &str) -> Option<Pod> {
        let (store, _) = self.pods.as_ref()?;
        let pod = store.get(&ObjectRef::new(name).within(namespace))?;
        (pod.metadata.uid.as_deref() == Some(uid)).then(|| (*pod).clone())
    }

    fn nad(&self, namespace: &str, name: &str) -> Option<DynamicObject> {
        let key = ObjectRef::new_with(name, self.nad_resource.clone()).within(namespace);
        self.nads.0.get(&key).map(|n| (*n).clone())
    }

    fn api_call(&self, operation: &'static str, elapsed: Duration) {
        self.metrics.api_call(operation, elapsed);
    }
}
