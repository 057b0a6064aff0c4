# The root module the RayDog cluster is adopted into. `raydog import-state` adds
# imports.tf here, and `terraform plan -generate-config-out=generated.tf` the resources.

terraform {
  required_version = ">= 1.9"

  required_providers {
    raydog = {
      source  = "yellowdog/raydog"
      version = "~> 0.1"
    }
  }
}

# URL and credentials come from YD_API_URL, YD_API_KEY_ID and YD_API_KEY_SECRET.
provider "raydog" {}
