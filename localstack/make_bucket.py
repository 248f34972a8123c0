"""Creates an S3 bucket at an endpoint if it does not exist: make_bucket.py ENDPOINT BUCKET."""
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
try:
    s3.create_bucket(Bucket=bucket)
    print(f"bucket {bucket} created at {endpoint}")
except s3.exceptions.BucketAlreadyOwnedByYou:
    print(f"bucket {bucket} exists at {endpoint}")
