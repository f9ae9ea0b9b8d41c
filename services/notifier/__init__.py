"""The notifier: alerts by email (and webhook) on errors, failed jobs and interruptions."""
