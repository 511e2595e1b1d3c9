//! Which changed paths make a push worth analysing: dependency manifests and lock files of the
//! common ecosystems, container and CI definitions, and build files that describe the code's
//! structure. One table, matched on the file name (and, for CI, the directory).

/// What kind of file a rule recognises; carried in the analysis job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Npm,
    Cargo,
    Go,
    Python,
    Maven,
    Gradle,
    Nuget,
    Bundler,
    Composer,
    Container,
    Ci,
    Build,
}

enum Pattern {
    /// The whole file name.
    Name(&'static str),
    /// File name prefix and suffix with something between (`requirements` … `.txt`).
    Around(&'static str, &'static str),
    /// File name extension, with the dot.
    Extension(&'static str),
    /// A file with this extension directly under this directory path.
    InDir(&'static str, &'static str),
}

use Kind::*;
use Pattern::*;

const RULES: &[(Pattern, Kind)] = &[
    (Name("package.json"), Npm),
    (Name("package-lock.json"), Npm),
    (Name("npm-shrinkwrap.json"), Npm),
    (Name("yarn.lock"), Npm),
    (Name("pnpm-lock.yaml"), Npm),
    (Name("pnpm-workspace.yaml"), Npm),
    (Name("Cargo.toml"), Cargo),
    (Name("Cargo.lock"), Cargo),
    (Name("go.mod"), Go),
    (Name("go.sum"), Go),
    (Name("go.work"), Go),
    (Name("requirements.txt"), Python),
    (Around("requirements", ".txt"), Python),
    (Around("requirements", ".in"), Python),
    (Name("pyproject.toml"), Python),
    (Name("setup.py"), Python),
    (Name("setup.cfg"), Python),
    (Name("Pipfile"), Python),
    (Name("Pipfile.lock"), Python),
    (Name("poetry.lock"), Python),
    (Name("uv.lock"), Python),
    (Name("pom.xml"), Maven),
    (Name("build.gradle"), Gradle),
    (Name("build.gradle.kts"), Gradle),
    (Name("settings.gradle"), Gradle),
    (Name("settings.gradle.kts"), Gradle),
    (Name("gradle.lockfile"), Gradle),
    (Name("libs.versions.toml"), Gradle),
    (Extension(".csproj"), Nuget),
    (Extension(".fsproj"), Nuget),
    (Extension(".vbproj"), Nuget),
    (Name("packages.config"), Nuget),
    (Name("packages.lock.json"), Nuget),
    (Name("Directory.Packages.props"), Nuget),
    (Name("Directory.Build.props"), Nuget),
    (Name("Gemfile"), Bundler),
    (Name("Gemfile.lock"), Bundler),
    (Extension(".gemspec"), Bundler),
    (Name("composer.json"), Composer),
    (Name("composer.lock"), Composer),
    (Name("Dockerfile"), Container),
    (Around("Dockerfile.", ""), Container),
    (Extension(".dockerfile"), Container),
    (Name("Containerfile"), Container),
    (Name("docker-compose.yml"), Container),
    (Name("docker-compose.yaml"), Container),
    (Name("compose.yml"), Container),
    (Name("compose.yaml"), Container),
    (InDir(".github/workflows", ".yml"), Ci),
    (InDir(".github/workflows", ".yaml"), Ci),
    (Name(".gitlab-ci.yml"), Ci),
    (Name("azure-pipelines.yml"), Ci),
    (Name("Jenkinsfile"), Ci),
    (InDir(".circleci", ".yml"), Ci),
    (Name("CMakeLists.txt"), Build),
    (Name("Makefile"), Build),
    (Name("tsconfig.json"), Build),
    (Extension(".sln"), Build),
    (Name("BUILD.bazel"), Build),
    (Name("WORKSPACE"), Build),
    (Name("MODULE.bazel"), Build),
];

fn matches(pattern: &Pattern, path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    match *pattern {
        Name(n) => name == n,
        Around(prefix, suffix) => {
            name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
        Extension(ext) => name.len() > ext.len() && name.ends_with(ext),
        InDir(d, ext) => dir == d && name.len() > ext.len() && name.ends_with(ext),
    }
}

/// The kind of a changed path, when it is one that warrants analysis.
pub fn classify(path: &str) -> Option<Kind> {
    RULES
        .iter()
        .find(|(p, _)| matches(p, path))
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ecosystem_is_recognised_anywhere_in_the_tree() {
        let cases = [
            ("package.json", Npm),
            ("web/yarn.lock", Npm),
            ("apps/x/pnpm-lock.yaml", Npm),
            ("Cargo.lock", Cargo),
            ("crates/core/Cargo.toml", Cargo),
            ("go.sum", Go),
            ("requirements.txt", Python),
            ("requirements-dev.txt", Python),
            ("svc/pyproject.toml", Python),
            ("uv.lock", Python),
            ("pom.xml", Maven),
            ("app/build.gradle.kts", Gradle),
            ("gradle/libs.versions.toml", Gradle),
            ("src/App/App.csproj", Nuget),
            ("packages.lock.json", Nuget),
            ("Gemfile.lock", Bundler),
            ("mygem.gemspec", Bundler),
            ("composer.lock", Composer),
            ("Dockerfile", Container),
            ("docker/Dockerfile.prod", Container),
            ("compose.yaml", Container),
            (".github/workflows/ci.yml", Ci),
            (".gitlab-ci.yml", Ci),
            (".circleci/config.yml", Ci),
            ("CMakeLists.txt", Build),
            ("Solution.sln", Build),
        ];
        for (path, kind) in cases {
            assert_eq!(classify(path), Some(kind), "{path}");
        }
    }

    #[test]
    fn ordinary_source_and_lookalikes_are_not() {
        for path in [
            "src/main.rs",
            "README.md",
            "docs/package.json.md",
            "mypackage.json",
            "requirements",
            ".txt",
            "Dockerfile.",
            ".csproj",
            "ci.yml",
            "nested/.github/workflows/ci.yml",
            ".github/workflows/scripts/run.sh",
            "Cargo.toml.orig",
        ] {
            assert_eq!(classify(path), None, "{path}");
        }
    }
}
