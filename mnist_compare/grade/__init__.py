"""Grading a class: many submissions' --check into one grade sheet (`mnist-compare grade`)."""
