# Source this to point Strata at the LocalStack started by localstack/start.sh:
#   . localstack/env.sh && strata serve --store s3://strata-test   (the CLI comes with the API issue)
export AWS_ENDPOINT_URL=http://127.0.0.1:${LOCALSTACK_PORT:-4566}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
