"""The whole chain: jobs over the stages, the headless driver and the demo."""
