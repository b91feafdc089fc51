//! [`PaceLayer`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower_layer::Layer;

use ezthrottle_core::protocol::Pace as PaceValue;

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
    Fixed(PaceValue),
    Adaptive(PaceValue),
    Fn(Box<dyn Fn(usize) -> PaceValue + Send + Sync>),
}

impl Shared {
    /// Whether the pace depends on the count of requests in flight.
    pub(crate) fn counts(&self) -> bool {
        !matches!(self.source, Source::Fixed(_))
    }

    /// The pace to announce while `in_flight` requests (this one included) are handled.
    pub(crate) fn pacing(&self, in_flight: usize) -> PaceValue {
        match &self.source {
            Source::Fixed(pace) => *pace,
            Source::Adaptive(idle) => {
                let others = u32::try_from(in_flight.saturating_sub(1)).unwrap_or(u32::MAX);
                let max = idle.max_concurrent();
                let free = max.saturating_sub(others).max(1);
                // A valid rate scaled by a fraction in (0, 1] stays valid unless it
                // underflows to 0; then the slowest valid pace is announced.
                PaceValue::new(idle.rps() * f64::from(free) / f64::from(max), free)
                    .or_else(|_| PaceValue::new(f64::MIN_POSITIVE, free))
                    .unwrap_or(*idle)
            }
            Source::Fn(pace) => pace(in_flight),
        }
    }
}

impl PaceLayer {
    /// Always announces `pace`.
    pub fn fixed(pace: PaceValue) -> Self {
        Self::with_source(Source::Fixed(pace))
    }

    /// Announces the room left of `idle`, the pace of an idle service: with `n` *other*
    /// requests in flight out of `idle.max_concurrent()`, `free = max(max - n, 1)`, it
    /// announces `free` in flight and `idle.rps() * free / max` requests per second.
    /// Saturated, that is one request at `idle.rps() / max` per second.
    ///
    /// ```
    /// use ezthrottle_core::Pace;
    /// use ezthrottle_tower::PaceLayer;
    /// let layer = PaceLayer::adaptive(Pace::new(20.0, 4)?);
    /// # let _ = layer; Ok::<(), ezthrottle_core::protocol::InvalidPace>(())
    /// ```
    pub fn adaptive(idle: PaceValue) -> Self {
        Self::with_source(Source::Adaptive(idle))
    }

    /// Computes the pace from the count of requests in flight (this one included).
    ///
    /// ```
    /// use ezthrottle_core::Pace;
    /// use ezthrottle_tower::PaceLayer;
    /// let (busy, idle) = (Pace::new(1.0, 1)?, Pace::new(10.0, 8)?);
    /// let layer = PaceLayer::from_fn(move |in_flight| if in_flight > 8 { busy } else { idle });
    /// # let _ = layer; Ok::<(), ezthrottle_core::protocol::InvalidPace>(())
    /// ```
    pub fn from_fn<F>(pace: F) -> Self
    where
        F: Fn(usize) -> PaceValue + Send + Sync + 'static,
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
            Source::Fixed(pace) => debug.field("fixed", pace),
            Source::Adaptive(idle) => debug.field("adaptive", idle),
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
        let pace = |rps, max| PaceValue::new(rps, max).unwrap();
        let layer = PaceLayer::adaptive(pace(20.0, 4));
        assert_eq!(layer.shared.pacing(1), pace(20.0, 4));
        assert_eq!(layer.shared.pacing(3), pace(10.0, 2));
        assert_eq!(layer.shared.pacing(5), pace(5.0, 1));
        assert_eq!(layer.shared.pacing(50), pace(5.0, 1));
        assert!(format!("{layer:?}").contains("max_concurrent: 4"), "{layer:?}");
    }

    #[test]
    fn adaptive_paces_at_the_extremes_of_valid_configuration_are_valid() {
        for idle in [
            PaceValue::new(f64::MAX, u32::MAX).unwrap(),
            PaceValue::new(f64::MIN_POSITIVE, u32::MAX).unwrap(),
            PaceValue::new(f64::MIN_POSITIVE, 1).unwrap(),
        ] {
            let layer = PaceLayer::adaptive(idle);
            for in_flight in [0, 1, 2, usize::MAX / 2, usize::MAX] {
                let pace = layer.shared.pacing(in_flight);
                assert!(pace.rps().is_finite() && pace.rps() > 0.0, "{idle:?} at {in_flight}: {pace:?}");
                assert!((1..=idle.max_concurrent()).contains(&pace.max_concurrent()), "{pace:?}");
            }
        }
    }
}
