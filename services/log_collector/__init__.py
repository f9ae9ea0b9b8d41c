"""The log collector: stores every log batch, serves search and the live tail."""
