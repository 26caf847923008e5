"""Tests of the HTTP server (server/)."""
