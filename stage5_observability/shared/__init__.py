"""What the producer and the consumer share: the settings base, logging without Flask, the event format and the
database engine's options. Both import from here; neither imports the other."""
