"""Tests of the software models in sim/."""
