//! URNs naming transforms, coders and window functions in the portable graph.
//!
//! Beam's standard URNs are used where the meaning is the same; `runnel:` URNs name our own.

/// Creates a bounded PCollection from elements held by the pipeline.
pub const CREATE: &str = "runnel:transform:create:v1";
/// Element-wise processing with a DoFn.
pub const PAR_DO: &str = "beam:transform:pardo:v1";
/// Groups values per key and window.
pub const GROUP_BY_KEY: &str = "beam:transform:group_by_key:v1";
/// Combines values per key and window with a CombineFn (runners may lift it).
pub const COMBINE_PER_KEY: &str = "beam:transform:combine_per_key:v1";
/// Merges PCollections of one type.
pub const FLATTEN: &str = "beam:transform:flatten:v1";
/// Assigns windows and sets the windowing strategy.
pub const WINDOW_INTO: &str = "beam:transform:window_into:v1";
/// Redistributes elements, breaking fusion.
pub const RESHUFFLE: &str = "beam:transform:reshuffle:v1";
/// A composite transform: only its subtransforms run.
pub const COMPOSITE: &str = "runnel:transform:composite:v1";
/// A scripted unbounded source for tests: elements, watermark and processing-time advances,
/// replayed one event at a time. Unlike Beam's `beam:transform:teststream:v1` the elements are not
/// in the payload (the pipeline holds them, as for Create), hence our own URN.
pub const TEST_STREAM: &str = "runnel:transform:test_stream:v1";
/// Reads an unbounded source by polling a reader the pipeline holds.
pub const READ_UNBOUNDED: &str = "runnel:transform:read_unbounded:v1";

/// All leaf transform URNs a runner must know.
pub const LEAF_TRANSFORMS: &[&str] =
    &[CREATE, PAR_DO, GROUP_BY_KEY, COMBINE_PER_KEY, FLATTEN, WINDOW_INTO, RESHUFFLE, TEST_STREAM, READ_UNBOUNDED];

/// Coder of a key-value pair: components are the key and value coders.
pub const KV_CODER: &str = "beam:coder:kv:v1";
/// Coder of a sequence: the component is the element coder.
pub const ITERABLE_CODER: &str = "beam:coder:iterable:v1";
/// Runnel's default coder: the element type's serde implementation, in bincode.
pub const SERDE_CODER: &str = "runnel:coder:serde_bincode:v1";

/// All coder URNs.
pub const CODERS: &[&str] = &[KV_CODER, ITERABLE_CODER, SERDE_CODER];

/// The global window function.
pub const GLOBAL_WINDOWS: &str = "beam:window_fn:global_windows:v1";
/// Fixed windows.
pub const FIXED_WINDOWS: &str = "beam:window_fn:fixed_windows:v1";
/// Sliding windows.
pub const SLIDING_WINDOWS: &str = "beam:window_fn:sliding_windows:v1";
/// Session windows.
pub const SESSION_WINDOWS: &str = "beam:window_fn:session_windows:v1";
/// A registered user window function.
pub const CUSTOM_WINDOWS: &str = "runnel:window_fn:custom:v1";
/// A merging window function consumed by a grouping (Beam's `InvalidWindows`).
pub const CONSUMED_WINDOWS: &str = "runnel:window_fn:consumed:v1";
