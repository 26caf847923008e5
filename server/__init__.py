"""The query server (FastAPI + uvicorn): EQL over HTTP, profile and segment lookups.

May import every other package of the project.
"""
