"""Tests of the four SMTP clients (sync, asyncio, trio, anyio)."""
