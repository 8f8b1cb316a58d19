"""The sandbox hub's spawner: notebook servers as local processes, sized by the chart's profiles.

In the cluster KubeSpawner reads ``singleuser.profileList`` (from ``daskhub.profiles``) and
starts a pod with each profile's ``kubespawner_override``. ``ProfileLocalSpawner`` takes the very
same list and applies what a local process can honour:

* ``cpu_limit``: the server is pinned (``sched_setaffinity``) to that many of this machine's
  cores, at most all of them; fractions round up;
* ``mem_limit``: the server's address space is capped (``RLIMIT_AS``), so an allocation beyond
  it fails with MemoryError as a pod's would be OOM-killed;
* ``*_guarantee``, ``node_selector``, ``tolerations``, ``extra_resource_limits`` (GPUs) and
  ``image`` cannot apply here: the spawner logs each one it skips, and every server runs the
  HelioCloud environment installed by ``make setup`` (``.venv-researcher``, the images' spec).

The chosen profile's name reaches the server as ``HELIOCLOUD_PROFILE``; JupyterHub itself sets
``CPU_LIMIT``/``MEM_LIMIT`` as it does in a pod. ``singleuser.extraEnv`` values are expanded the
way KubeSpawner expands them (``{username}``, ``{JUPYTER_IMAGE_SPEC}``).
"""
from __future__ import annotations

import html
import math
import os
import resource

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Dict, List, Unicode, default

# kubespawner_override keys a local process applies; the rest are reported as skipped.
_APPLIED = {"cpu_limit", "mem_limit"}
_NOT_LOCAL = {
    "cpu_guarantee": "no scheduler reserves cores here",
    "mem_guarantee": "no scheduler reserves memory here",
    "node_selector": "there is one machine",
    "tolerations": "there is one machine",
    "extra_resource_limits": "this machine has no GPU for a notebook",
    "image": "servers run the HelioCloud environment of .venv-researcher (the same spec as the image)",
}


def _sandbox_note(profile: dict) -> str:
    """What the form says of a profile this machine cannot honour in full."""
    if "extra_resource_limits" in profile.get("kubespawner_override", {}):
        return " <em>(no GPU in the sandbox: runs on this machine's CPU)</em>"
    return ""


class ProfileLocalSpawner(SimpleLocalProcessSpawner):
    profile_list = List(Dict(), config=True, help="KubeSpawner's profile_list (singleuser.profileList)")
    image = Unicode("", config=True, help="singleuser.image as name:tag; the profile's override replaces it")

    def _default_profile(self) -> dict:
        return next((p for p in self.profile_list if p.get("default")), self.profile_list[0]) if self.profile_list else {}

    @default("options_form")
    def _options_form_default(self):
        if not self.profile_list:
            return ""
        default = self._default_profile()
        choices = "\n".join(
            f'<label class="profile"><input type="radio" name="profile" value="{html.escape(p["slug"])}"'
            f'{" checked" if p is default else ""}> <strong>{html.escape(p["display_name"])}</strong> '
            f'{html.escape(p.get("description", ""))}{_sandbox_note(p)}</label><br>'
            for p in self.profile_list)
        return f'<fieldset id="heliocloud-profiles"><legend>Server size</legend>\n{choices}\n</fieldset>'

    def options_from_form(self, formdata):
        return {"profile": formdata.get("profile", [""])[0]}

    def profile(self) -> dict:
        """The profile the user chose (its slug in user_options["profile"]), else the default."""
        wanted = (self.user_options or {}).get("profile")
        if wanted and not any(p["slug"] == wanted for p in self.profile_list):
            raise ValueError(f"no profile {wanted!r}; profiles: {', '.join(p['slug'] for p in self.profile_list)}")
        return next((p for p in self.profile_list if p["slug"] == wanted), None) or self._default_profile()

    async def start(self):
        profile = self.profile()
        override = profile.get("kubespawner_override", {})
        for key, value in override.items():
            if key in _APPLIED:
                setattr(self, key, value)
            elif key == "image":
                self.image = value
            if key in _NOT_LOCAL:
                self.log.info("profile %s: %s=%r not applied (%s)", profile.get("slug"), key, value, _NOT_LOCAL[key])
        self._profile_slug = profile.get("slug", "")
        return await super().start()

    def expand(self, value: str) -> str:
        """KubeSpawner's expansion of {username} and the image spec in extraEnv values."""
        return value.replace("{username}", self.user.name).replace("{JUPYTER_IMAGE_SPEC}", self.image)

    def get_env(self):
        env = super().get_env()
        env.update({k: self.expand(v) for k, v in env.items() if isinstance(v, str) and "{" in v})
        env["JUPYTER_IMAGE_SPEC"] = self.image
        env["HELIOCLOUD_PROFILE"] = getattr(self, "_profile_slug", "")
        return env

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0:
            # Jupyter Server refuses root without this; the images run notebooks as uid 1000, and
            # a sandbox started as root (a CI container) runs its servers as root too.
            args.append("--ServerApp.allow_root=True")
        return args

    def make_preexec_fn(self, name):
        home_and_cwd = super().make_preexec_fn(name)
        cores = sorted(os.sched_getaffinity(0))
        keep = cores[: max(1, min(len(cores), math.ceil(self.cpu_limit)))] if self.cpu_limit else cores
        memory = int(self.mem_limit) if self.mem_limit else 0

        def preexec():
            home_and_cwd()
            os.sched_setaffinity(0, keep)
            if memory:
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

        return preexec
