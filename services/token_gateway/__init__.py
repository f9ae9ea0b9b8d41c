"""The token gateway: customer credentials, time-limited file links, rate limits and bans."""
