"""Runs the SAM transform on template.yaml offline, for both ApiAuthorization
values, both front ends (HTTP API, function URL) and a log in an S3 Express
directory bucket, and checks the result (sam validate --lint does not run
the transform).
Run with the lambda tooling venv: .venv-lambda/bin/python tests/check_template.py"""
import copy
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "offline")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "offline")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    def load(self):
        return {}


root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
template = yaml_parse(open(os.path.join(root, "template.yaml")).read())
replicas = {"ReplicaStores": "eu-west-1=s3://strata-eu/strata",
            "ReplicaBucketArns": "arn:aws:s3:::strata-eu"}
function_url = {"Frontend": "FunctionUrl"}
express_log = {"LogBucket": "strata-log--use1-az4--x-s3"}
for auth, extra in [("AWS_IAM", {}), ("NONE", {}), ("AWS_IAM", replicas), ("AWS_IAM", function_url),
                    ("NONE", function_url), ("AWS_IAM", express_log)]:
    t = copy.deepcopy(template)
    for r in t["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = "s3://bucket/code.zip"  # what sam package puts there
    out = transform(t, {"ApiAuthorization": auth, **extra}, NoManagedPolicies())
    types = sorted(v["Type"] for v in out["Resources"].values())
    for needed in ["AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route", "AWS::S3::Bucket", "AWS::Scheduler::Schedule",
                   "AWS::Lambda::Permission", "AWS::Lambda::Url"]:
        if needed not in types:
            sys.exit(f"{auth}: transformed template lacks {needed}")
    functions = [v for v in out["Resources"].values() if v["Type"] == "AWS::Lambda::Function"]
    for f in functions:
        p = f["Properties"]
        if p.get("Runtime") != "provided.al2023" or p.get("Architectures") != ["arm64"]:
            sys.exit(f"{auth}: a function is not provided.al2023/arm64: {p.get('Runtime')} {p.get('Architectures')}")
    # The replicator (global tables, and the index follower) and its SQS
    # trigger always exist: secondary indexes need them without replicas.
    if "AWS::Lambda::EventSourceMapping" not in types or len(functions) != 4:
        sys.exit("no replicator function with an SQS event source")
    # The two front ends are exclusive, each under its condition.
    conditions = {k: v.get("Condition") for k, v in out["Resources"].items()}
    if conditions["ApiFunctionUrl"] != "UseFunctionUrl" or conditions["HttpApi"] != "UseHttpApi":
        sys.exit(f"front ends not conditional: {conditions}")
    # With a log bucket, every function may open S3 Express sessions on it.
    # Every role grants S3 Express sessions, under the HasLogBucket condition (the transform
    # leaves conditions to CloudFormation).
    roles = [v for v in out["Resources"].values() if v["Type"] == "AWS::IAM::Role"]
    grants = [p for r in roles for p in r["Properties"].get("Policies", [])
              if "s3express:CreateSession" in str(p)]
    if len(grants) != len(functions) or not all("'Fn::If': ['HasLogBucket'" in str(g) for g in grants):
        sys.exit(f"not every function may open S3 Express sessions on the log bucket: {grants}")
    # The users secret is read by the API function at run time, never
    # resolved into its configuration at deploy time.
    if "resolve:secretsmanager" in str(out):
        sys.exit("the users secret is resolved into a function's configuration")
    secret_grants = [p for r in roles for p in r["Properties"].get("Policies", [])
                     if "secretsmanager:GetSecretValue" in str(p)]
    if len(secret_grants) != 1 or "'Fn::If': ['HasAuthUsers'" not in str(secret_grants[0]):
        sys.exit(f"the API function (only) may read the users secret, when one is named: {secret_grants}")
    public = [k for k, v in out["Resources"].items()
              if v["Type"] == "AWS::Lambda::Permission" and v.get("Condition") == "PublicFunctionUrl"]
    if len(public) != 2:
        sys.exit(f"a public function URL needs InvokeFunctionUrl and InvokeFunction grants: {public}")
    print(f"template transforms with ApiAuthorization={auth} {extra}: "
          f"{len(out['Resources'])} resources, {len(functions)} functions")
