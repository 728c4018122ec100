"""Tests of the evaluation server side, mirroring evalserver/."""
