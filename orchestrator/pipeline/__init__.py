"""The pipeline: stage graph, fingerprints, skip/resume, manifest, workdir lock."""
