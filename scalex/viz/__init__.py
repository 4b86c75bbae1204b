"""holoviews plots of scalex results, their styling and export, and the HTML report."""
