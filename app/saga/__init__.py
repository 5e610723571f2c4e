"""The order fulfilment saga's runtime: pure reactions (fulfilment), durable timers, the runner."""
