terraform {
  # 1.9: variable validations may refer to other variables (pool names are checked
  # against the cluster name, the node cap against every pool).
  required_version = ">= 1.9"

  required_providers {
    raydog = {
      source  = "yellowdog/raydog"
      version = "~> 0.1"
    }
  }
}
