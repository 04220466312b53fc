"""Trace recording and reading (bdemu record / show / export)."""
