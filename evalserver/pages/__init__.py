"""Server-rendered leaderboard pages (Jinja2, no JavaScript framework, no external assets)."""
