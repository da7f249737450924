//! Helpers shared by core's integration tests.

use runnel_model::exec::UserError;
use runnel_runner_core::group::Reducer;
use runnel_runner_core::Key;

/// Sums `i64` values per key, whatever the key type (subtracting retractions): the reducer most
/// grouping tests use.
pub struct Sum;

impl<K: Key> Reducer<K, i64> for Sum {
    type State = i64;
    type Output = i64;
    fn create(&self, _: &K) -> Result<i64, UserError> {
        Ok(0)
    }
    fn add(&self, _: &K, s: &mut i64, v: i64) -> Result<(), UserError> {
        *s += v;
        Ok(())
    }
    fn retract(&self, _: &K, s: &mut i64, v: i64) -> Result<(), UserError> {
        *s -= v;
        Ok(())
    }
    fn merge(&self, _: &K, s: &mut i64, o: i64) -> Result<(), UserError> {
        *s += o;
        Ok(())
    }
    fn extract(&self, _: &K, s: &i64) -> Result<i64, UserError> {
        Ok(*s)
    }
    fn extract_owned(&self, _: &K, s: i64) -> Result<i64, UserError> {
        Ok(s)
    }
}
