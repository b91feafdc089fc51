//! [`PaceLayer`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower_layer::Layer;

use super::Pacing;
use super::service::Pace;

/// Adds `X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT` to a service's responses.
///
/// The services a layer makes (and their clones) share one count of requests in flight.
#[derive(Clone)]
pub struct PaceLayer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) source: Source,
    pub(crate) in_flight: AtomicUsize,
}

pub(crate) enum Source {
    Fixed(Pacing),
    Adaptive { max_in_flight: u32, rps_when_idle: f64 },
    Fn(Box<dyn Fn(usize) -> Pacing + Send + Sync>),
}

impl Shared {
    /// Whether the pace depends on the count of requests in flight.
    pub(crate) fn counts(&self) -> bool {
        !matches!(self.source, Source::Fixed(_))
    }

    /// The pace to announce while `in_flight` requests (this one included) are handled.
    pub(crate) fn pacing(&self, in_flight: usize) -> Pacing {
        match &self.source {
            Source::Fixed(pacing) => *pacing,
            Source::Adaptive { max_in_flight, rps_when_idle } => {
                let others = u32::try_from(in_flight.saturating_sub(1)).unwrap_or(u32::MAX);
                let max = (*max_in_flight).max(1);
                let free = max.saturating_sub(others).max(1);
                Pacing::new(rps_when_idle * f64::from(free) / f64::from(max), free)
            }
            Source::Fn(pace) => pace(in_flight),
        }
    }
}

impl PaceLayer {
    /// Always announces `rps` requests per second and `max_concurrent` in flight.
    pub fn fixed(rps: f64, max_concurrent: u32) -> Self {
        Self::with_source(Source::Fixed(Pacing::new(rps, max_concurrent)))
    }

    /// Announces the room left: with `n` *other* requests in flight out of
    /// `max_in_flight`, `free = max(max_in_flight - n, 1)`, it announces `free` in flight
    /// and `rps_when_idle * free / max_in_flight` requests per second. Idle, that is
    /// `max_in_flight` and `rps_when_idle`; saturated, one request at
    /// `rps_when_idle / max_in_flight` per second.
    ///
    /// ```
    /// use ezthrottle_tower::PaceLayer;
    /// let layer = PaceLayer::adaptive(4, 20.0);
    /// # let _ = layer;
    /// ```
    pub fn adaptive(max_in_flight: u32, rps_when_idle: f64) -> Self {
        Self::with_source(Source::Adaptive { max_in_flight, rps_when_idle })
    }

    /// Computes the pace from the count of requests in flight (this one included).
    ///
    /// ```
    /// use ezthrottle_tower::{PaceLayer, Pacing};
    /// let layer = PaceLayer::from_fn(|in_flight| if in_flight > 8 { Pacing::new(1.0, 1) } else { Pacing::new(10.0, 8) });
    /// # let _ = layer;
    /// ```
    pub fn from_fn<F>(pace: F) -> Self
    where
        F: Fn(usize) -> Pacing + Send + Sync + 'static,
    {
        Self::with_source(Source::Fn(Box::new(pace)))
    }

    fn with_source(source: Source) -> Self {
        Self { shared: Arc::new(Shared { source, in_flight: AtomicUsize::new(0) }) }
    }

    /// Requests in flight now, across the services this layer made (always 0 for
    /// [`fixed`](Self::fixed), which does not count).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for PaceLayer {
    type Service = Pace<S>;

    fn layer(&self, inner: S) -> Pace<S> {
        Pace::from_shared(inner, Arc::clone(&self.shared))
    }
}

impl fmt::Debug for PaceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PaceLayer");
        match &self.shared.source {
            Source::Fixed(pacing) => debug.field("fixed", pacing),
            Source::Adaptive { max_in_flight, rps_when_idle } => {
                debug.field("max_in_flight", max_in_flight).field("rps_when_idle", rps_when_idle)
            }
            Source::Fn(_) => debug.field("from_fn", &".."),
        };
        debug.field("in_flight", &self.in_flight()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_announces_the_room_left() {
        let layer = PaceLayer::adaptive(4, 20.0);
        assert_eq!(layer.shared.pacing(1), Pacing::new(20.0, 4));
        assert_eq!(layer.shared.pacing(3), Pacing::new(10.0, 2));
        assert_eq!(layer.shared.pacing(5), Pacing::new(5.0, 1));
        assert_eq!(layer.shared.pacing(50), Pacing::new(5.0, 1));
        assert!(format!("{layer:?}").contains("max_in_flight: 4"));
    }
}
