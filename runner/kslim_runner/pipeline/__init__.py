"""The job pipeline: prepare -> baseline -> strategy steps -> export -> evaluate -> benchmark -> report,
each a stage whose completion is checkpointed in the output folder so a killed run resumes."""
