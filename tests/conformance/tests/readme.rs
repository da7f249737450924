//! The README's TestStream example, kept compiling and passing.

use runnel::prelude::*;

#[test]
fn readme_test_stream_example_passes() {
    let p = Pipeline::new(PipelineOptions::default());
    let scores = p.apply(
        "Scores",
        TestStream::new()
            .add_elements(vec![(("red".to_string(), 3i64), 1)])
            .advance_processing_time(5)
            .add_elements(vec![(("red".to_string(), 4), 2)])
            .advance_watermark_to(10),
    );
    let sums = scores
        .apply(
            "Window",
            WindowInto::new(FixedWindows::of(10))
                .triggering(
                    AfterWatermark::past_end_of_window()
                        .with_early_firings(AfterProcessingTime::past_first_element_in_pane().plus_delay_of(5)),
                )
                .accumulating_fired_panes(),
        )
        .combine_per_key("Sum", combine::Sum::new())
        .apply("Values", Values);
    sums.apply(
        "Check",
        PAssert::panes_in_window(
            Window::interval(0, 10),
            vec![ExpectedPane::early(0, vec![3]), ExpectedPane::on_time(1, vec![7]).last()],
        ),
    );
    p.run().expect("the README example passes");
}
