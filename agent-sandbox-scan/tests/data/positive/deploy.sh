#!/bin/sh
set -eu
export NPM_TOKEN=npm_{{b62:36}}
export GITLAB_TOKEN="glpat-{{b62:20}}"
export DIGITALOCEAN_ACCESS_TOKEN=dop_v1_{{hex:64}}
export FLY_API_TOKEN="FlyV1 fm2_{{b64:200}}"
curl -H "Authorization: Bearer xoxb-{{digits:12}}-{{digits:13}}-{{b62:24}}" https://slack.com/api/chat.postMessage
export TWILIO_API_KEY=SK{{hex:32}}
export FLY_ORG_TOKEN=fo1_{{b64url:43}}
export GH_APP=ghs_{{b62:36}}
export GH_PAT=github_pat_{{b62:22}}_{{b62:59}}
