"""The Gradio user interface: one module per tab, each with a `build(services)` called inside its `gr.Tab`."""
