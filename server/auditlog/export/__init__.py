"""Export jobs (issue 4): a filtered snapshot of the log written as CSV, JSON or XLSX, in the
background, to S3 or a local folder, in bounded memory.

- `formats`: the formats and how file names are made;
- `fields`: what one event becomes in a table row or a JSON object;
- `csv_writer`, `json_writer`, `xlsx_writer`: streaming writers behind `writers.open_writer`;
- `storage`, `local_storage`, `s3_storage`: where finished files go;
- `jobs`: the job value and the export_jobs queries; `snapshot`: what a job will export;
- `runner`: the bounded worker pool; `setup`: wiring from the configuration.
"""
