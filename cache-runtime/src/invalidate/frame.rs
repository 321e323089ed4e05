//! The load frame: what a loader read and which tags it attached, recorded while it runs.
//!
//! Every load (a miss's, a refresh's) runs inside a frame of its cache, kept on a thread-local
//! stack while the loader runs: synchronously, or for each poll of its future, so that it
//! follows an async loader across `.await` and from thread to thread. A read of any cache while
//! a frame is open records the entry read (and, transitively, what that entry depends on) in
//! the innermost frame; [`tag`](crate::tag) records a tag. When the load ends, the frame becomes
//! the new entry's [`Stamps`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::Scope;
use super::stamps::{self, Remote, RemoteKind, Stamps};

/// What one load has recorded so far.
#[derive(Default)]
pub(crate) struct Frame {
    /// The loading cache (`None`: a frame that records nothing).
    scope: Option<Arc<Scope>>,
    /// Whether reads of other caches are recorded (`depends = false` turns it off).
    depends: bool,
    since: u64,
    slots: Vec<u16>,
    remote: Vec<Remote>,
    /// A forced refresh's frame (see [`Force`]); `Force::Off` for a load's.
    force: Force,
    /// A frame that visits entries without reading them (see [`peek`]).
    peek: bool,
}

/// The state of a forced refresh ([`crate::reload`], `<fn>_refresh`): its frame records
/// nothing; the first lookup of the target cache made directly in it (not inside a load it
/// starts) misses, and the load that follows reloads the entry whatever its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Force {
    /// A load's frame.
    #[default]
    Off,
    /// Waiting for the lookup of the cache whose scope is at this address (`None`: any cache).
    Armed(Option<usize>),
    /// That cache's lookup missed: its next load (in this frame) is the forced one.
    Taken(usize),
    /// Done: the frame records nothing more.
    Done,
}

/// The identity of a cache's scope, for [`Force`].
#[inline]
pub(crate) fn scope_id(scope: &Arc<Scope>) -> usize {
    Arc::as_ptr(scope).addr()
}

thread_local! {
    /// How many frames are open on this thread: read by every hit (no destructor, so no
    /// lazy registration: one thread-pointer-relative load).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Whether a load is running on this thread (its reads are then recorded).
#[inline(always)]
pub(crate) fn active() -> bool {
    DEPTH.with(Cell::get) != 0
}

impl Frame {
    /// A frame for a load of `scope`'s cache starting now.
    pub(crate) fn new(scope: &Arc<Scope>, depends: bool) -> Self {
        Frame {
            scope: Some(Arc::clone(scope)),
            depends,
            since: stamps::epoch(),
            slots: Vec::new(),
            remote: Vec::new(),
            force: Force::Off,
            peek: false,
        }
    }

    /// The frame of a forced refresh of the first lookup of `target` (`None`: of any cache)
    /// made directly in it.
    pub(crate) fn force(target: Option<usize>) -> Self {
        Frame {
            force: Force::Armed(target),
            ..Frame::default()
        }
    }

    fn add_slot(&mut self, slot: u16) {
        if !self.slots.contains(&slot) {
            self.slots.push(slot);
        }
    }

    fn add_remote(&mut self, kind: RemoteKind, key: String) {
        if !self.remote.iter().any(|r| r.key == key) {
            self.remote.push(Remote {
                kind,
                key,
                token: 0,
            });
        }
    }

    /// Attaches `tag` to the entry being loaded.
    fn tag(&mut self, tag: &str) {
        let Some(scope) = self.scope.clone() else {
            return;
        };
        self.add_slot(scope.tag_slot(tag));
        if let Some(global) = &scope.global_tags {
            self.add_remote(RemoteKind::Local, scope.tag_key(tag));
            self.add_remote(RemoteKind::Global, format!("{global}{tag}"));
        }
    }

    /// Records a read of an entry of `from` (`ident`: its key's stable hash; `stamps`: what it
    /// depends on itself).
    fn read(&mut self, from: &Scope, ident: u64, (slots, remote): (&[u16], &[Remote])) {
        let Some(to_remote) = self.scope.as_ref().map(|s| s.global_tags.is_some()) else {
            return;
        };
        if !self.depends {
            return;
        }
        self.add_slot(from.dep_slot(ident));
        self.add_slot(from.clear_slot);
        for &s in slots {
            self.add_slot(s);
        }
        // Only an entry that goes to a remote tier records what the fleet checks.
        if to_remote {
            if from.global_tags.is_some() {
                self.add_remote(RemoteKind::Local, from.dep_key(ident));
            }
            for r in remote {
                self.add_remote(r.kind, r.key.clone());
            }
        }
    }

    /// What the entry loaded in this frame depends on (`None`: nothing).
    pub(crate) fn finish(self) -> Option<Arc<Stamps>> {
        if self.slots.is_empty() && self.remote.is_empty() {
            return None;
        }
        Some(Arc::new(Stamps::new(
            self.since,
            self.slots.into(),
            self.remote.into(),
        )))
    }
}

/// Runs `f` with `frame` open on this thread.
pub(crate) fn within<R>(frame: &mut Frame, f: impl FnOnce() -> R) -> R {
    let _open = Open::new(frame);
    f()
}

/// `frame` open on this thread until dropped (also when `f` unwinds).
struct Open<'a>(&'a mut Frame);

impl<'a> Open<'a> {
    fn new(frame: &'a mut Frame) -> Self {
        let f = std::mem::take(frame);
        STACK.with_borrow_mut(|s| s.push(f));
        DEPTH.with(|d| d.set(d.get() + 1));
        Open(frame)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        if let Some(f) = STACK.with_borrow_mut(Vec::pop) {
            *self.0 = f;
        }
    }
}

/// A loader's future, polled with its frame open.
pub(crate) struct Within<'a, Fut> {
    pub(crate) fut: Pin<&'a mut Fut>,
    pub(crate) frame: &'a mut Frame,
}

impl<Fut: Future> Future for Within<'_, Fut> {
    type Output = Fut::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let this = self.get_mut();
        let _open = Open::new(this.frame);
        this.fut.as_mut().poll(cx)
    }
}

/// Runs `f`, whose copies of entries (a visit of the store) are not reads: they neither count
/// for a scheduled refresh nor keep an entry from idling, and carry the entries' stamps.
pub(crate) fn peek<R>(f: impl FnOnce() -> R) -> R {
    let mut frame = Frame {
        peek: true,
        ..Frame::default()
    };
    within(&mut frame, f)
}

/// Whether the innermost open frame is a [`peek`].
#[cold]
pub(crate) fn peeking() -> bool {
    STACK.with_borrow(|s| s.last().is_some_and(|f| f.peek))
}

/// Records, in the innermost open frame, `tag` on the entry being loaded. `false` outside a load.
pub(crate) fn tag(tag: &str) -> bool {
    if !active() {
        return false;
    }
    STACK.with_borrow_mut(|s| match s.last_mut() {
        Some(f) if f.scope.is_some() => {
            f.tag(tag);
            true
        }
        _ => false,
    })
}

/// A lookup of the cache of `scope` (made while a frame is open): `true` when it is the target
/// of the innermost frame's forced refresh, which it then takes (the lookup is to miss).
#[cold]
pub(crate) fn take_force(scope: &Arc<Scope>) -> bool {
    let id = scope_id(scope);
    STACK.with_borrow_mut(|s| match s.last_mut() {
        Some(f) if f.force == Force::Armed(None) || f.force == Force::Armed(Some(id)) => {
            f.force = Force::Taken(id);
            true
        }
        _ => false,
    })
}

/// A load of the cache of `scope` (made while a frame is open): `true` when it is the innermost
/// frame's forced refresh (its lookup missed for it, or found nothing), which it then ends.
#[cold]
pub(crate) fn take_forced_load(scope: &Arc<Scope>) -> bool {
    let id = scope_id(scope);
    STACK.with_borrow_mut(|s| match s.last_mut() {
        Some(f)
            if f.force == Force::Armed(None)
                || f.force == Force::Armed(Some(id))
                || f.force == Force::Taken(id) =>
        {
            f.force = Force::Done;
            true
        }
        _ => false,
    })
}

/// Records, in the innermost open frame, a read of an entry of `from`.
#[cold]
pub(crate) fn read(from: &Scope, ident: u64, stamps: (&[u16], &[Remote])) {
    STACK.with_borrow_mut(|s| {
        if let Some(f) = s.last_mut() {
            f.read(from, ident, stamps);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(name: &str) -> Arc<Scope> {
        Arc::new(Scope::local(name))
    }

    #[test]
    fn tags_and_reads_land_in_the_innermost_frame() {
        let (outer_s, inner_s, other) = (scope("outer"), scope("inner"), scope("other"));
        let mut outer = Frame::new(&outer_s, true);
        let mut inner = Frame::new(&inner_s, true);
        within(&mut outer, || {
            assert!(tag("a"));
            within(&mut inner, || {
                assert!(tag("b"));
                read(&other, 7, (&[], &[]));
            });
            read(&inner_s, 1, (&[], &[]));
        });
        assert!(!tag("outside"));
        assert!(!active());
        let inner = inner.finish().unwrap();
        assert!(inner.slots.contains(&inner_s.tag_slot("b")));
        assert!(inner.slots.contains(&other.dep_slot(7)));
        assert!(!inner.slots.contains(&inner_s.tag_slot("a")));
        let outer = outer.finish().unwrap();
        assert!(outer.slots.contains(&outer_s.tag_slot("a")));
        assert!(outer.slots.contains(&inner_s.dep_slot(1)));
        assert!(!outer.slots.contains(&other.dep_slot(7)));
    }

    #[test]
    fn a_frame_without_depends_keeps_tags_only() {
        let (s, other) = (scope("nodeps"), scope("read"));
        let mut f = Frame::new(&s, false);
        within(&mut f, || {
            tag("t");
            read(&other, 1, (&[], &[]));
        });
        let st = f.finish().unwrap();
        assert_eq!(&*st.slots, &[s.tag_slot("t")]);
    }

    #[test]
    fn a_panicking_loader_closes_its_frame() {
        let s = scope("panics");
        let mut f = Frame::new(&s, true);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            within(&mut f, || {
                tag("x");
                panic!("loader");
            })
        }));
        assert!(r.is_err());
        assert!(!active());
        assert!(f.finish().is_some());
    }
}
