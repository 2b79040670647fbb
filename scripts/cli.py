def main():
    print("chipknit")
