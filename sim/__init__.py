"""The workshop simulator: scenario files rendered to videos, site file, scans, labels, truth.

Entry point: `sim.render.render_scenario(scenario_path, out_dir, seed)`; training data:
`sim.dataset.export_yolo(render_dirs, out_dir)`. The format is described in docs/scenarios.md.
"""
