#!/usr/bin/python3
"""Renders deploy/k8s and deploy/k8s/prometheus-adapter with `kubectl kustomize` (offline) and
checks what kustomize adds: the namespace, the common label, the image override and the
adapter's ConfigMap. Exits 77 (reported by CTest as skipped, not passed) without kubectl, which
Debian does not package.

  kustomize_test.py SOURCE_DIR
"""

import os
import shutil
import subprocess
import sys
import unittest

import yaml

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
K8S = os.path.join(SRC, "deploy", "k8s")
KUBECTL = shutil.which("kubectl")


def render(folder):
    out = subprocess.run([KUBECTL, "kustomize", folder], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(out.stderr)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


class KustomizeTest(unittest.TestCase):
    def test_app_renders_into_its_namespace_with_the_image_override(self):
        objects = render(K8S)
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            k = yaml.safe_load(f)
        kinds = sorted(o["kind"] for o in objects)
        self.assertEqual(kinds, sorted(["Namespace", "Deployment", "Service", "Service",
                                        "HorizontalPodAutoscaler", "PodDisruptionBudget",
                                        "ServiceMonitor"]))
        for o in objects:
            if o["kind"] != "Namespace":
                self.assertEqual(o["metadata"]["namespace"], k["namespace"], o["kind"])
            self.assertEqual(o["metadata"]["labels"]["app.kubernetes.io/part-of"], "visionserve")
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        image = k["images"][0]
        self.assertEqual(deployment["spec"]["template"]["spec"]["containers"][0]["image"],
                         f"{image['newName']}:{image['newTag']}")
        # The common label must not leak into selectors (immutable on a Deployment).
        self.assertNotIn("app.kubernetes.io/part-of", deployment["spec"]["selector"]["matchLabels"])

    def test_adapter_config_map_carries_the_rules_file(self):
        objects = render(os.path.join(K8S, "prometheus-adapter"))
        self.assertEqual(len(objects), 1)
        cm = objects[0]
        self.assertEqual((cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]),
                         ("ConfigMap", "adapter-config", "monitoring"))
        with open(os.path.join(K8S, "prometheus-adapter", "config.yaml")) as f:
            self.assertEqual(cm["data"]["config.yaml"], f.read())


if __name__ == "__main__":
    if KUBECTL is None:
        print("SKIPPED: kubectl is not installed (not packaged by Debian); "
              "tests/deploy/deploy_test.py checks the manifests without it")
        sys.exit(77)
    unittest.main(argv=sys.argv[:1], verbosity=2)
