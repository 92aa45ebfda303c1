"""One definition of every body: REST (``schemas.api``) and Kafka (``schemas.messages``)."""
