//! Assertions that run inside a pipeline, on every runner (Beam's PAssert).

use crate::combine::{Combine, ToList};
use crate::dofn::{DoFnContext, ParDo};
use crate::pipeline::{PCollection, PTransform};
use crate::window::WindowInto;
use runnel_model::{WindowFnSpec, WindowingStrategy};
use runnel_runner_core::Data;
use std::sync::Arc;

/// Assertions on the whole contents of a PCollection; a failed assertion fails the job with a
/// message naming the assertion's transform.
pub struct PAssert;

type Check<T> = Arc<dyn Fn(&[T]) -> Result<(), String> + Send + Sync>;

/// An assertion applied to a PCollection.
pub struct Assert<T> {
    check: Check<T>,
}

impl PAssert {
    /// The PCollection holds exactly `expected`, in any order (duplicates count).
    pub fn equal_in_any_order<T: Data>(expected: Vec<T>) -> Assert<T> {
        let want = sorted_encodings(&expected);
        Assert {
            check: Arc::new(move |actual: &[T]| {
                if sorted_encodings(actual) == want {
                    Ok(())
                } else {
                    let mut a: Vec<String> = actual.iter().map(|x| format!("{x:?}")).collect();
                    let mut e: Vec<String> = expected.iter().map(|x| format!("{x:?}")).collect();
                    a.sort();
                    e.sort();
                    Err(format!("expected (any order) [{}] but got [{}]", e.join(", "), a.join(", ")))
                }
            }),
        }
    }

    /// The PCollection is empty.
    pub fn is_empty<T: Data>() -> Assert<T> {
        Assert {
            check: Arc::new(|actual: &[T]| {
                if actual.is_empty() {
                    Ok(())
                } else {
                    Err(format!("expected an empty PCollection but got {} elements: {:?}", actual.len(), actual))
                }
            }),
        }
    }

    /// `f` accepts the contents.
    pub fn satisfies<T: Data>(f: impl Fn(&[T]) -> Result<(), String> + Send + Sync + 'static) -> Assert<T> {
        Assert { check: Arc::new(f) }
    }
}

fn sorted_encodings<T: serde::Serialize>(xs: &[T]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = xs.iter().map(|x| bincode::serialize(x).unwrap_or_default()).collect();
    v.sort();
    v
}

impl<T: Data> PTransform<PCollection<T>> for Assert<T> {
    type Output = PCollection<()>;
    fn expand(self, input: PCollection<T>) -> PCollection<()> {
        // Check the whole contents, across windows and panes (as Beam's PAssert does): otherwise
        // each window would be checked on its own, and an empty windowed input not at all.
        let input = if input.windowing_strategy() == WindowingStrategy::global_default() {
            input
        } else {
            input.apply("IntoGlobalWindow", WindowInto::new(WindowFnSpec::Global))
        };
        let all = input.apply("Collect", Combine::globally(ToList::new()));
        let check = self.check;
        all.apply(
            "Check",
            ParDo::from_fn(move |values: Vec<T>, ctx: &mut DoFnContext<'_, '_, ()>| {
                check(&values).map_err(|e| format!("assertion failed in {}: {e}", ctx.transform_name()))?;
                ctx.emit(());
                Ok(())
            }),
        )
    }
}
