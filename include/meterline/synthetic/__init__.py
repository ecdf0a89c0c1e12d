"""The workshop: synthetic feeds for the demo, the tests and the benchmarks.

`catalog`, `cur`, `events` and `payments` write a landing zone the way finance, AWS, the metering
service and the payment processor would, with the noise a real month has (duplicates, late and
malformed events, restatements). Nothing in the pipeline imports them: the loaders, models and
checks know only the feed contracts and the catalog, so a generator's values never shape them.
"""
