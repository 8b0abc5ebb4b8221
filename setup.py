from setuptools import setup

setup(
    name="sgaplus",
    version="0.1.0",
    description="Fused Triton kernels for SGA+ latent refinement in neural image compression",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=["sgaplus", "sgaplus.kernels", "sgaplus.codecs"],
    package_dir={"sgaplus": "sgaplus", "sgaplus.kernels": "kernels"},
    package_data={"sgaplus": ["assets/*.pt", "assets/models.json", "assets/README.md"]},
    entry_points={"console_scripts": ["sgaplus = sgaplus.cli:main"]},
    install_requires=[
        "torch>=2.1",
        "triton>=3.0; platform_system == 'Linux'",
        "numpy",
    ],
    extras_require={
        "compressai": ["compressai>=1.2.6", "pillow", "tqdm", "scikit-image"],
        "test": ["pytest", "scipy", "scikit-image", "compressai>=1.2.6", "pillow", "tqdm"],
        "bench": ["pytest", "pytest-benchmark", "matplotlib", "compressai>=1.2.6", "pillow", "tqdm"],
    },
)
