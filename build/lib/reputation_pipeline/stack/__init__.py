"""Local development/test stack: Apache Kafka (KRaft) and an S3 endpoint (moto)."""
