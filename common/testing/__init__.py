"""The acceptance harness: a pytest plugin, the checklist parser, the scorecard and the grader."""
