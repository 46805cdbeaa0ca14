"""Supply of numbers: the carrier protocol and its adapters (`carrier`, `inventory`, `twilio_carrier`),
which number to buy (`choice`) and the outbox that makes purchases and releases survive faults."""
