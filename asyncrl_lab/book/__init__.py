"""What serves the book's chapters, built on the library and never imported by it: multi-seed
experiments and quick mode (experiments), studies with provenance (studies), the sample-correlation
measurements (analysis), figures of several runs (plots), widgets (interactive), the generated
reference page (reference), and the chapters as notebooks that work when downloaded (notebooks)."""
