"""Engine-free processing stages: each adds fields to clip records; none imports Ray."""
