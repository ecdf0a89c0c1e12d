"""AWS Cost and Usage Reports: discover deliveries, normalise three formats, load atomically, generate."""
